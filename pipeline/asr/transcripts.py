"""The transcripts table: its rows, the has_speech rule, and which clips are not transcribed.

The ``has_speech`` rule, applied identically to both backends:

1. A segment is dropped as non-speech when ``no_speech_prob > 0.6`` and ``avg_logprob < -1``
   (Whisper's own per-window skip rule, repeated per segment so both backends agree).
2. ``text`` is the space-joined, stripped text of the remaining segments.
3. ``has_speech`` is True iff that text has at least one letter or digit (any script). With
   ``asr.vad`` (faster-whisper only) a clip in which Silero VAD finds no speech is transcribed
   again without VAD before it can be ``no_speech``.

``avg_logprob`` and ``no_speech_prob`` are duration-weighted means over the segments listed in
``segments`` (the kept ones; null when none): the mean, not the max, so that one noisy window in
a long clip does not mask the rest. Status per row: ok | no_audio | silent | no_speech | error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

ASR_STATUSES: tuple[str, ...] = ("ok", "no_audio", "silent", "no_speech", "error")
NO_SPEECH_PROB = 0.6
LOW_AVG_LOGPROB = -1.0

WORD_TYPE = pa.struct(
    [("start", pa.float64()), ("end", pa.float64()), ("word", pa.string()), ("probability", pa.float64())]
)
SEGMENT_TYPE = pa.struct(
    [
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("text", pa.string()),
        ("avg_logprob", pa.float64()),
        ("no_speech_prob", pa.float64()),
        ("words", pa.list_(WORD_TYPE)),
    ]
)
TRANSCRIPT_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("avg_logprob", pa.float64()),
        ("no_speech_prob", pa.float64()),
        ("segments", pa.list_(SEGMENT_TYPE)),
        ("has_speech", pa.bool_()),
        ("status", pa.string()),
        ("message", pa.string()),
    ]
)


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()

    def looks_like_non_speech(self) -> bool:
        # A model that yields non-finite scores (a broken or untrained checkpoint) is not trusted.
        if not (math.isfinite(self.no_speech_prob) and math.isfinite(self.avg_logprob)):
            return True
        return self.no_speech_prob > NO_SPEECH_PROB and self.avg_logprob < LOW_AVG_LOGPROB


@dataclass(frozen=True)
class Transcript:
    """One row of the transcripts table."""

    clip_id: str
    text: str | None
    language: str | None
    avg_logprob: float | None
    no_speech_prob: float | None
    segments: tuple[Segment, ...]
    has_speech: bool
    status: str
    message: str
    # Not a column: the clip's Whisper encoder states (T, D) when the recognizer kept them for
    # features@audio (pipeline.whisper.encoder_states); the asr stage writes them apart.
    encoder_states: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def skipped(cls, clip_id: str, status: str, message: str) -> Transcript:
        return cls(clip_id, None, None, None, None, (), False, status, message)

    def to_row(self) -> dict:
        segments = [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
                "words": [vars(w) for w in s.words],
            }
            for s in self.segments
        ]
        row = {**vars(self), "segments": segments}
        del row["encoder_states"]
        return row


@dataclass
class AsrClip:
    """What ASR needs of one clip: its audio and what decode found (``faults`` of the status table)."""

    clip_id: str
    samples: np.ndarray | None  # (N,) float32 mono, or None
    sample_rate: int
    faults: Sequence[str] = ()
    decode_message: str = ""


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    if total <= 0.0:
        return float(np.mean(values))
    return float(np.dot(values, weights) / total)


def summarise(clip_id: str, language: str | None, raw_segments: list[Segment]) -> Transcript:
    """Apply the has_speech rule of the module docstring to one clip's raw segments."""
    kept = tuple(s for s in raw_segments if not s.looks_like_non_speech())
    text = " ".join(s.text for s in kept if s.text).strip()
    has_speech = any(ch.isalnum() for ch in text)
    if kept:
        weights = [max(s.end - s.start, 0.0) for s in kept]
        avg_logprob = _weighted_mean([s.avg_logprob for s in kept], weights)
        no_speech_prob = _weighted_mean([s.no_speech_prob for s in kept], weights)
    else:
        avg_logprob = no_speech_prob = None
    if has_speech:
        message = ""
    elif not raw_segments:
        message = "no speech found (no segments decoded)"
    elif not kept:
        message = (
            f"all {len(raw_segments)} segments look like non-speech "
            f"(no_speech_prob > {NO_SPEECH_PROB} and avg_logprob < {LOW_AVG_LOGPROB})"
        )
    else:
        message = f"transcript has no letters or digits: {text!r}"
    return Transcript(
        clip_id=clip_id,
        text=text if has_speech else None,
        language=language,
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        segments=kept,
        has_speech=has_speech,
        status="ok" if has_speech else "no_speech",
        message=message,
    )


def skip_reason(clip: AsrClip) -> Transcript | None:
    """The row of a clip that must not be transcribed (no, silent or too short audio), else None.

    A clip decode calls ``too_short`` (under ``decode.min_duration_s``) holds no sentence; Whisper
    would still hallucinate a word there (it wrote "I", word probability 0.05, for a 0.24 s clip),
    so it gets ``no_speech`` without being run; so does digital silence decode did not flag (a
    caller that skips decode), on which Whisper writes "You"."""
    if clip.samples is None or len(clip.samples) == 0:
        return Transcript.skipped(clip.clip_id, "no_audio", clip.decode_message or "no decoded audio")
    if "silent_audio" in clip.faults:
        return Transcript.skipped(clip.clip_id, "silent", clip.decode_message or "decode found the audio silent")
    if "too_short" in clip.faults:
        return Transcript.skipped(clip.clip_id, "no_speech", clip.decode_message or "clip too short to hold speech")
    if not np.any(clip.samples):
        return Transcript.skipped(clip.clip_id, "no_speech", "all samples are zero")
    return None


def transcripts_table(rows: Iterable[Transcript]) -> pa.Table:
    return pa.Table.from_pylist([row.to_row() for row in rows], schema=TRANSCRIPT_SCHEMA)
