"""The two Whisper backends behind one interface, and one clip's transcription."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Protocol

import ctranslate2
import numpy as np

from pipeline.asr.encoder_cover import recording
from pipeline.asr.speech_windows import clip_timestamps, speech_in_windows
from pipeline.asr.transcripts import AsrClip, Segment, Transcript, Word, skip_reason, summarise
from pipeline.config import AsrParams
from pipeline.runtime.devices import ctranslate2_device, torch_device
from pipeline.whisper import windows
from pipeline.whisper.models import as_16bit, load_whisper_model, to_whisper_rate

# faster-whisper's default: a window whose text repeats itself (gzip compression ratio > 2.4) or
# is improbable (mean log-probability < -1) is decoded again by sampling at the next temperature.
# Without it, temperature 0 alone loops on the trailing silence of quiet clips (RAVDESS at -25 dB:
# 16.7% WER against 1.1%). Sampling is seeded per clip so transcripts stay reproducible.
TEMPERATURE_FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SAMPLING_SEED = 0


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
        word_timestamps: bool = False,
        keep_states: bool = False,
        skip_speechless: bool = False,
    ) -> None:
        self.model = load_whisper_model(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        # Keep the encoder states of every clip's 30 s windows, for features@audio (not with VAD:
        # the encoder then sees the trimmed audio, not the clip).
        self.keep_states = keep_states and not vad
        self.skip_speechless = skip_speechless
        self.encoder_states: np.ndarray | None = None  # (T, D) float16 of the last clip recognised, when kept
        # Of the last clip: encoder windows the decoder ran, cover windows encoded for the features
        # alone, windows decoded and skipped for want of speech (benchmarks and tests count them).
        self.passes = {"decoder": 0, "cover": 0, "windows_skipped": 0}
        self.options = dict(
            language=language,
            beam_size=beam_size,
            vad_filter=vad,
            word_timestamps=word_timestamps,
            temperature=TEMPERATURE_FALLBACK,
            condition_on_previous_text=False,
        )

    def recognize(self, samples: np.ndarray) -> tuple[str | None, list[Segment]]:
        options = self.options
        speech = None
        if self.skip_speechless and windows.count(len(samples)) > 1:
            speech = speech_in_windows(samples)
            if not all(speech):
                options = {**options, "clip_timestamps": clip_timestamps(speech)}
        with recording(self.model, len(samples)) if self.keep_states else _no_cover() as cover:
            nothing_to_decode = speech is not None and not any(speech)
            language, segments = (None, []) if nothing_to_decode else self._transcribe(samples, options)
        if cover is not None:
            self.encoder_states = cover.complete(samples)
            self.passes = {"decoder": cover.decoder_passes, "cover": cover.cover_passes}
        else:
            self.encoder_states = None
            self.passes = {"decoder": None, "cover": 0}
        self.passes["windows_skipped"] = 0 if speech is None else speech.count(False)
        if not segments and self.options["vad_filter"] and (speech is None or any(speech)):
            # Silero VAD removed everything: on emotional or quiet real speech it drops whole clips
            # (6 of 1,440 RAVDESS clips), and decode has already ruled the track not silent.
            language, segments = self._transcribe(samples, {**options, "vad_filter": False})
        return language, segments

    def _transcribe(self, samples: np.ndarray, options: dict) -> tuple[str | None, list[Segment]]:
        ctranslate2.set_random_seed(SAMPLING_SEED)  # the same transcript whatever ran before
        raw, info = self.model.transcribe(samples, **options)
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


@contextlib.contextmanager
def _no_cover() -> Iterator[None]:
    yield None


class OpenAIWhisperRecognizer:
    """openai-whisper (PyTorch) on an already built ``whisper.model.Whisper``; it has no VAD."""

    def __init__(self, *, model, language: str | None, beam_size: int, word_timestamps: bool = False) -> None:
        self.model = model
        self.options = dict(
            language=language,
            beam_size=beam_size,
            word_timestamps=word_timestamps,
            temperature=0.0,
            condition_on_previous_text=False,
            fp16=next(model.parameters()).is_cuda,
            verbose=None,
        )

    @classmethod
    def load(
        cls, name_or_path: str, *, language: str | None, beam_size: int, device: str, word_timestamps: bool = False
    ) -> OpenAIWhisperRecognizer:
        import whisper  # checkpoints load with torch.load(weights_only=True) inside

        model = whisper.load_model(name_or_path, device=device)
        return cls(model=model, language=language, beam_size=beam_size, word_timestamps=word_timestamps)

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
    return torch_device() if backend == "openai-whisper" else ctranslate2_device()


def build_recognizer(params: AsrParams, *, device: str, cpu_threads: int) -> Recognizer:
    if params.backend == "openai-whisper":
        if device == "cpu":
            import torch

            torch.set_num_threads(cpu_threads)  # a worker process's share of the cores
        return OpenAIWhisperRecognizer.load(
            params.model,
            language=params.language,
            beam_size=params.beam_size,
            device=device,
            word_timestamps=params.word_timestamps,
        )
    return FasterWhisperRecognizer(
        model=params.model,
        language=params.language,
        beam_size=params.beam_size,
        vad=params.vad,
        compute_type=params.compute_type,
        device=device,
        cpu_threads=cpu_threads,
        word_timestamps=params.word_timestamps,
        keep_states=params.share_encoder,
        skip_speechless=params.skip_speechless,
    )


def transcribe_clip(recognizer: Recognizer, clip: AsrClip) -> Transcript:
    """One clip's row; never raises: a failure becomes status ``error`` with the exception text."""
    skipped = skip_reason(clip)
    if skipped is not None:
        return skipped
    try:
        samples = as_16bit(to_whisper_rate(np.asarray(clip.samples, np.float32), clip.sample_rate))
        if not np.isfinite(samples).all():
            raise ValueError("audio has non-finite samples")
        language, segments = recognizer.recognize(samples)
        transcript = summarise(clip.clip_id, language, segments)
        states = getattr(recognizer, "encoder_states", None)
        return transcript if states is None else dataclasses.replace(transcript, encoder_states=states)
    except Exception as error:  # noqa: BLE001 - one bad clip must not stop the run
        return Transcript.skipped(clip.clip_id, "error", f"{type(error).__name__}: {error}")
