"""The two Whisper backends behind one interface, and one clip's transcription."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline import runtime
from pipeline.asr.transcripts import AsrClip, Segment, Transcript, Word, skip_reason, summarise
from pipeline.config import AsrParams
from pipeline.whisper_models import load_whisper_model, to_whisper_rate


class AsrModelError(RuntimeError):
    """The configured model cannot be loaded: a configuration error that stops the stage."""


class Recognizer(Protocol):
    def recognize(self, samples: np.ndarray) -> tuple[str | None, list[Segment]]:
        """16 kHz mono float32 (N,) -> (language, raw segments with word timestamps)."""
        ...


class FasterWhisperRecognizer:
    """faster-whisper (CTranslate2); ``model`` as accepted by :func:`load_whisper_model`."""

    def __init__(
        self,
        *,
        model: str,
        language: str | None,
        beam_size: int,
        vad: bool,
        compute_type: str,
        device: str,
        cpu_threads: int,
    ) -> None:
        self.model = load_whisper_model(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self.options = dict(
            language=language,
            beam_size=beam_size,
            vad_filter=vad,
            word_timestamps=True,
            temperature=0.0,
            condition_on_previous_text=False,
        )

    def recognize(self, samples: np.ndarray) -> tuple[str | None, list[Segment]]:
        raw, info = self.model.transcribe(samples, **self.options)
        segments = [
            Segment(
                start=float(s.start),
                end=float(s.end),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
                words=tuple(
                    Word(float(w.start), float(w.end), w.word.strip(), float(w.probability)) for w in s.words or ()
                ),
            )
            for s in raw  # a generator: decoding happens while iterating
        ]
        return info.language, segments


class OpenAIWhisperRecognizer:
    """openai-whisper (PyTorch) on an already built ``whisper.model.Whisper``; it has no VAD."""

    def __init__(self, *, model, language: str | None, beam_size: int) -> None:
        self.model = model
        self.options = dict(
            language=language,
            beam_size=beam_size,
            word_timestamps=True,
            temperature=0.0,
            condition_on_previous_text=False,
            fp16=next(model.parameters()).is_cuda,
            verbose=None,
        )

    @classmethod
    def load(cls, name_or_path: str, *, language: str | None, beam_size: int, device: str) -> OpenAIWhisperRecognizer:
        import whisper  # checkpoints load with torch.load(weights_only=True) inside

        return cls(model=whisper.load_model(name_or_path, device=device), language=language, beam_size=beam_size)

    def recognize(self, samples: np.ndarray) -> tuple[str | None, list[Segment]]:
        import whisper

        result = whisper.transcribe(self.model, samples, **self.options)
        segments = [
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=s["text"].strip(),
                avg_logprob=float(s["avg_logprob"]),
                no_speech_prob=float(s["no_speech_prob"]),
                words=tuple(
                    Word(float(w["start"]), float(w["end"]), w["word"].strip(), float(w["probability"]))
                    for w in s.get("words", ())
                ),
            )
            for s in result["segments"]
        ]
        return result.get("language"), segments


def recognizer_device(backend: str) -> str:
    """ "cuda" when the backend's runtime (torch or CTranslate2) sees a GPU, else "cpu"."""
    return runtime.torch_device() if backend == "openai-whisper" else runtime.ctranslate2_device()


def build_recognizer(params: AsrParams, *, device: str, cpu_threads: int) -> Recognizer:
    if params.backend == "openai-whisper":
        if device == "cpu":
            import torch

            torch.set_num_threads(cpu_threads)  # a worker process's share of the cores
        return OpenAIWhisperRecognizer.load(
            params.model, language=params.language, beam_size=params.beam_size, device=device
        )
    return FasterWhisperRecognizer(
        model=params.model,
        language=params.language,
        beam_size=params.beam_size,
        vad=params.vad,
        compute_type=params.compute_type,
        device=device,
        cpu_threads=cpu_threads,
    )


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
