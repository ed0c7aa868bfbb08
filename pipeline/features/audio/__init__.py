"""Audio features per clip: Whisper encoder states (offline default), a Hugging Face speech model,
or the Hume-Vidmimic2 organisers' pre-extracted wav2vec2 states.

The models produce a (T, D) sequence of frame states at the model's own rate (50 Hz: one frame per
320 samples of 16 kHz audio), cut to the frames that cover real audio (``ceil(N / 320)``), then
optionally average-pooled to ``pool_fps``.

- ``"whisper-encoder"``: the encoder of the same CTranslate2 Whisper model as ASR, on the same
  input (the audio on the 16-bit grid, ``pipeline.whisper.models.as_16bit``). The log-mel of the whole
  clip is computed once (normalised over the whole clip, exactly as both Whisper implementations
  do before transcribing), cut into ``window_s`` windows of its content frames (as faster-whisper
  cuts them), each zero-padded to the encoder's fixed 3000 mel frames (30 s), encoded in batches
  of ``batch_size`` windows across clips: (B, n_mels, 3000) -> (B, 1500, D), D = 512 for base,
  384 for tiny.en. A clip (of any length) whose states ASR kept (``pipeline.whisper.encoder_states``,
  same model and compute type, ``window_s`` 30) is not encoded again: its kept states are pooled.
- Any Hugging Face model with a convolutional waveform encoder (wav2vec2, HuBERT, WavLM, ...):
  last hidden state per frame. For checkpoints of audeering's dimensional emotion model (config
  ``architectures`` = ``Wav2Vec2ForSpeechClassification`` / ``EmotionModel``) the regression
  head's logits (arousal, dominance, valence), computed on the clip's mean-pooled states, are
  appended to every frame: 1024 + 3 = 1027-d for the large model, TAEMI's audio input.

- ``"prosody"``: no model: level (dBFS), voiced share, and the voice's level and pitch relative
  to the clip's median voiced frame (:mod:`pipeline.features.audio.prosody`), 4-d; what the
  frame-level demo runs with (docs/frame-tasks.md says why).

- ``"hume-wav2vec2"``: the Hume-Vidmimic2 organisers' own wav2vec2-base states, (T, 768) at
  50 Hz, read from their pickles (:mod:`pipeline.features.hume`) instead of the audio; pooled to
  ``pool_fps`` like the others, no model loaded.

Frame k of a clip sits at ``(k + 0.5) * 0.02`` s; a pooled bin b at its centre ``(b + 0.5) / pool_fps``.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import AudioFeatureParams
from pipeline.features.audio.frames import pool_frames
from pipeline.features.audio.hf import HFAudioExtractor
from pipeline.features.audio.prosody import ProsodyExtractor
from pipeline.features.audio.whisper_encoder import WhisperEncoderExtractor
from pipeline.features.hume import SOURCES, HumeExtractor, wav2vec2_times


def build_audio_extractor(params: AudioFeatureParams, *, device: str):
    """The extractor ``features.audio.model`` names; ``device`` is "cpu" or "cuda"."""
    if params.model == "hume-wav2vec2":  # the organisers' pickles: no model, no audio

        def place(values: np.ndarray, duration_s: float | None) -> tuple[np.ndarray, np.ndarray]:
            return pool_frames(values, wav2vec2_times(len(values)), params.pool_fps)

        return HumeExtractor(SOURCES[params.model], place)
    if params.model == "prosody":
        return ProsodyExtractor(pool_fps=params.pool_fps)
    if params.model == "whisper-encoder":
        return WhisperEncoderExtractor(
            whisper_model=params.whisper_model,
            compute_type=params.compute_type,
            pool_fps=params.pool_fps,
            window_s=params.window_s,
            batch_size=params.batch_size,
            device=device,
        )
    return HFAudioExtractor(
        model_id=params.model,
        pool_fps=params.pool_fps,
        window_s=params.window_s,
        batch_size=params.batch_size,
        device=device,
    )
