"""Speech recognition per clip: the transcripts table (``data/asr/transcripts.parquet``).

Which clips are transcribed: those whose decoded audio exists and is not silent (the decode
status says so); the others get status ``no_audio`` or ``silent`` without running a model.

Decoding is deterministic: temperature 0 only (no sampling fallback), a fixed beam, and
``condition_on_previous_text=False`` so that a misrecognised window cannot seed a repetition loop
in the next one (the fallback that would otherwise break such loops samples at random).

The ``has_speech`` rule, applied identically to both backends:

1. A segment is dropped as non-speech when ``no_speech_prob > 0.6`` and ``avg_logprob < -1``
   (Whisper's own per-window skip rule, repeated per segment so both backends agree).
2. ``text`` is the space-joined, stripped text of the remaining segments.
3. ``has_speech`` is True iff that text has at least one letter or digit (any script). With
   ``asr.vad`` (faster-whisper only) a clip in which Silero VAD finds no speech has no segments.

``avg_logprob`` and ``no_speech_prob`` are duration-weighted means over the segments listed in
``segments`` (the kept ones; null when none): the mean, not the max, so that one noisy window in
a long clip does not mask the rest. Status per row: ok | no_audio | silent | no_speech | error.
"""

from __future__ import annotations

import math
import re

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Protocol, Sequence

import numpy as np
import pyarrow as pa

from pipeline.config import AsrParams
from pipeline.whisper_models import available_cpus, load_whisper_model, to_whisper_rate

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
    text: Optional[str]
    language: Optional[str]
    avg_logprob: Optional[float]
    no_speech_prob: Optional[float]
    segments: tuple[Segment, ...]
    has_speech: bool
    status: str
    message: str

    @classmethod
    def skipped(cls, clip_id: str, status: str, message: str) -> "Transcript":
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
        return {**vars(self), "segments": segments}


@dataclass
class AsrClip:
    """What ASR needs of one clip: its audio and what decode found (``faults`` of the status table)."""

    clip_id: str
    samples: Optional[np.ndarray]  # (N,) float32 mono, or None
    sample_rate: int
    faults: Sequence[str] = ()
    decode_message: str = ""


class AsrModelError(RuntimeError):
    """The configured model cannot be loaded: a configuration error that stops the stage."""


class Recognizer(Protocol):
    def recognize(self, samples: np.ndarray) -> tuple[Optional[str], list[Segment]]:
        """16 kHz mono float32 (N,) -> (language, raw segments with word timestamps)."""
        ...


class FasterWhisperRecognizer:
    """faster-whisper (CTranslate2); ``model`` as accepted by :func:`load_whisper_model`."""

    def __init__(
        self, *, model: str, language: Optional[str], beam_size: int, vad: bool,
        compute_type: str, device: str, cpu_threads: int,
    ) -> None:
        self.model = load_whisper_model(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self.options = dict(
            language=language, beam_size=beam_size, vad_filter=vad, word_timestamps=True,
            temperature=0.0, condition_on_previous_text=False,
        )

    def recognize(self, samples: np.ndarray) -> tuple[Optional[str], list[Segment]]:
        raw, info = self.model.transcribe(samples, **self.options)
        segments = [
            Segment(
                start=float(s.start), end=float(s.end), text=s.text.strip(),
                avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
                words=tuple(Word(float(w.start), float(w.end), w.word.strip(), float(w.probability)) for w in s.words or ()),
            )
            for s in raw  # a generator: decoding happens while iterating
        ]
        return info.language, segments


class OpenAIWhisperRecognizer:
    """openai-whisper (PyTorch) on an already built ``whisper.model.Whisper``; it has no VAD."""

    def __init__(self, *, model, language: Optional[str], beam_size: int) -> None:
        self.model = model
        self.options = dict(
            language=language, beam_size=beam_size, word_timestamps=True, temperature=0.0,
            condition_on_previous_text=False, fp16=next(model.parameters()).is_cuda, verbose=None,
        )

    @classmethod
    def load(cls, name_or_path: str, *, language: Optional[str], beam_size: int, device: str) -> "OpenAIWhisperRecognizer":
        import whisper  # checkpoints load with torch.load(weights_only=True) inside

        return cls(model=whisper.load_model(name_or_path, device=device), language=language, beam_size=beam_size)

    def recognize(self, samples: np.ndarray) -> tuple[Optional[str], list[Segment]]:
        import whisper

        result = whisper.transcribe(self.model, samples, **self.options)
        segments = [
            Segment(
                start=float(s["start"]), end=float(s["end"]), text=s["text"].strip(),
                avg_logprob=float(s["avg_logprob"]), no_speech_prob=float(s["no_speech_prob"]),
                words=tuple(
                    Word(float(w["start"]), float(w["end"]), w["word"].strip(), float(w["probability"]))
                    for w in s.get("words", ())
                ),
            )
            for s in result["segments"]
        ]
        return result.get("language"), segments


def default_device(backend: str) -> str:
    """"cuda" when the backend's runtime sees a GPU, else "cpu"."""
    if backend == "openai-whisper":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def build_recognizer(params: AsrParams, *, device: str, cpu_threads: int) -> Recognizer:
    if params.backend == "openai-whisper":
        if device == "cpu":
            import torch

            torch.set_num_threads(cpu_threads)  # a worker process's share of the cores
        return OpenAIWhisperRecognizer.load(params.model, language=params.language, beam_size=params.beam_size, device=device)
    return FasterWhisperRecognizer(
        model=params.model, language=params.language, beam_size=params.beam_size, vad=params.vad,
        compute_type=params.compute_type, device=device, cpu_threads=cpu_threads,
    )


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    if total <= 0.0:
        return float(np.mean(values))
    return float(np.dot(values, weights) / total)


def summarise(clip_id: str, language: Optional[str], raw_segments: list[Segment]) -> Transcript:
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
        message = f"all {len(raw_segments)} segments look like non-speech (no_speech_prob > {NO_SPEECH_PROB} and avg_logprob < {LOW_AVG_LOGPROB})"
    else:
        message = f"transcript has no letters or digits: {text!r}"
    return Transcript(
        clip_id=clip_id, text=text if has_speech else None, language=language, avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob, segments=kept, has_speech=has_speech,
        status="ok" if has_speech else "no_speech", message=message,
    )


def skip_reason(clip: AsrClip) -> Optional[Transcript]:
    """The row of a clip that must not be transcribed (no, silent or too short audio), else None.

    A clip decode calls ``too_short`` (under ``decode.min_duration_s``) holds no sentence; Whisper
    would still hallucinate a word there (it wrote "I", word probability 0.05, for a 0.24 s clip),
    so it gets ``no_speech`` without being run."""
    if clip.samples is None or len(clip.samples) == 0:
        return Transcript.skipped(clip.clip_id, "no_audio", clip.decode_message or "no decoded audio")
    if "silent_audio" in clip.faults:
        return Transcript.skipped(clip.clip_id, "silent", clip.decode_message or "decode found the audio silent")
    if "too_short" in clip.faults:
        return Transcript.skipped(clip.clip_id, "no_speech", clip.decode_message or "clip too short to hold speech")
    return None


def transcribe_clip(recognizer: Recognizer, clip: AsrClip) -> Transcript:
    """One clip's row; never raises: a failure becomes status ``error`` with the exception text."""
    skipped = skip_reason(clip)
    if skipped is not None:
        return skipped
    try:
        samples = to_whisper_rate(np.asarray(clip.samples, np.float32), clip.sample_rate)
        if not np.isfinite(samples).all():
            raise ValueError("audio has non-finite samples")
        language, segments = recognizer.recognize(samples)
        return summarise(clip.clip_id, language, segments)
    except Exception as error:  # noqa: BLE001 - one bad clip must not stop the run
        return Transcript.skipped(clip.clip_id, "error", f"{type(error).__name__}: {error}")


# ------------------------------------------------------------------------ parallel execution
_worker_recognizer: Optional[Recognizer] = None


def _init_worker(params: AsrParams, device: str, cpu_threads: int) -> None:
    global _worker_recognizer
    _worker_recognizer = build_recognizer(params, device=device, cpu_threads=cpu_threads)


def _work(clip: AsrClip) -> Transcript:
    return transcribe_clip(_worker_recognizer, clip)


def _ready() -> bool:
    return True


@dataclass
class _Pending:
    clip: AsrClip
    future: Optional[Future] = None
    done: Optional[Transcript] = None


def transcribe_clips(
    clips: Iterable[AsrClip], params: AsrParams, *, device: str, workers: int,
) -> Iterator[Transcript]:
    """One Transcript per clip, in input order, with ``workers`` processes on CPU.

    Each worker process loads its own model with ``cpu_threads = cpus // workers``; at most
    ``4 * workers`` clips are in flight, so memory stays bounded on any number of clips. When a
    worker dies (a crash inside native code), the clips in flight are retried one at a time in a
    fresh pool, so only the clip that kills a worker on its own gets status ``error``.
    Raises :class:`AsrModelError` when the model cannot be loaded.
    """
    threads = max(1, available_cpus() // workers)
    if workers == 1 or device != "cpu":
        try:
            recognizer = build_recognizer(params, device=device, cpu_threads=threads)
        except Exception as error:
            raise AsrModelError(f"cannot load {params.backend} model {params.model!r}: {type(error).__name__}: {error}") from error
        for clip in clips:
            yield transcribe_clip(recognizer, clip)
        return

    def new_pool() -> ProcessPoolExecutor:
        # spawn, not fork: the parent may already hold OpenMP/CTranslate2 thread pools.
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(params, device, threads),
        )
        try:
            pool.submit(_ready).result()
        except BrokenProcessPool:
            pool.shutdown(cancel_futures=True)
            # A model that cannot load is a configuration error, not a bad clip: stop here.
            raise AsrModelError(f"cannot load {params.backend} model {params.model!r} (worker traceback above)") from None
        return pool

    pool = new_pool()
    queue: deque[_Pending] = deque()
    source = iter(clips)
    try:
        while True:
            while len(queue) < 4 * workers and (clip := next(source, None)) is not None:
                skipped = skip_reason(clip)
                queue.append(_Pending(clip, None if skipped else pool.submit(_work, clip), skipped))
            if not queue:
                return
            head = queue[0]
            if head.done is None:
                try:
                    head.done = head.future.result()
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool()
                    for item in [p for p in queue if p.done is None]:
                        try:
                            item.done = pool.submit(_work, item.clip).result()
                        except BrokenProcessPool as error:
                            item.done = Transcript.skipped(item.clip.clip_id, "error", f"ASR worker process died on this clip: {error}")
                            pool.shutdown(wait=False, cancel_futures=True)
                            pool = new_pool()
            yield queue.popleft().done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def transcripts_table(rows: Iterable[Transcript]) -> pa.Table:
    return pa.Table.from_pylist([row.to_row() for row in rows], schema=TRANSCRIPT_SCHEMA)


# ------------------------------------------------------------------------------ scoring
def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed, as word error rate compares them."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance on words (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]
