"""Speech recognition per clip: the transcripts table (``data/asr/transcripts.parquet``).

Which clips are transcribed: those whose decoded audio exists and is not silent (the decode
status says so); the others get status ``no_audio`` or ``silent`` without running a model.

faster-whisper reads what a bare ``model.transcribe(path)`` reads (the audio on the 16-bit grid)
with the bare call's decoding: beam search at temperature 0 and its temperature fallback, seeded
per clip so that transcripts are reproducible; no VAD by default (``asr.vad``: on real speech it
raised WER, docs/silence-and-speech.md). ``condition_on_previous_text=False`` so that a
misrecognised 30 s window cannot seed a repetition loop in the next one (only clips over 30 s).

Modules: ``transcripts`` (rows, schema, the has_speech rule), ``recognizers`` (faster-whisper and
openai-whisper behind one interface), ``parallel`` (many clips on worker processes), ``wer``
(word error rate for tests and benchmarks).
"""

from pipeline.asr.parallel import transcribe_clips
from pipeline.asr.recognizers import (
    AsrModelError,
    FasterWhisperRecognizer,
    OpenAIWhisperRecognizer,
    Recognizer,
    build_recognizer,
    recognizer_device,
    transcribe_clip,
)
from pipeline.asr.transcripts import (
    ASR_STATUSES,
    LOW_AVG_LOGPROB,
    NO_SPEECH_PROB,
    TRANSCRIPT_SCHEMA,
    AsrClip,
    Segment,
    Transcript,
    Word,
    skip_reason,
    summarise,
    transcripts_table,
)
from pipeline.asr.wer import word_errors, words

__all__ = [
    "ASR_STATUSES",
    "LOW_AVG_LOGPROB",
    "NO_SPEECH_PROB",
    "TRANSCRIPT_SCHEMA",
    "AsrClip",
    "AsrModelError",
    "FasterWhisperRecognizer",
    "OpenAIWhisperRecognizer",
    "Recognizer",
    "Segment",
    "Transcript",
    "Word",
    "build_recognizer",
    "recognizer_device",
    "skip_reason",
    "summarise",
    "transcribe_clip",
    "transcribe_clips",
    "transcripts_table",
    "word_errors",
    "words",
]
