"""Audio features: Whisper encoder frames (shapes, times, windows, real-audio rule, pooling,
missing records, determinism) and the Hugging Face path on tiny random models saved locally."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.speech import load_audio
from pipeline.config import AudioFeatureParams
from pipeline.decoded import AudioInput
from pipeline.features.audio import build_audio_extractor
from pipeline.features.audio.frames import pool_frames
from pipeline.features.audio.hf import HFAudioExtractor, emotion_model_class
from pipeline.features.audio.whisper_encoder import WhisperEncoderExtractor
from pipeline.whisper.geometry import WINDOW_MEL
from pipeline.whisper.models import as_16bit

SR = 16000


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """(N,) float32: a gliding harmonic tone with noise, loud enough to be far from silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * wave).astype(np.float32)


def clip(clip_id: str, samples: np.ndarray | None, rate: int = SR, reason: str = "") -> AudioInput:
    return AudioInput(clip_id, samples, rate, 0.0 if samples is None else len(samples) / rate, reason)


@pytest.fixture(scope="module")
def raw() -> WhisperEncoderExtractor:
    """The default encoder (base, int8) at 50 Hz, no pooling."""
    return build_audio_extractor(AudioFeatureParams(pool_fps=None), device="cpu")


def test_default_extractor_protocol(raw: WhisperEncoderExtractor) -> None:
    assert (raw.modality, raw.dim, raw.model_name) == ("audio", 512, "whisper-encoder:base:int8")


def test_frames_cover_only_real_audio(raw: WhisperEncoderExtractor) -> None:
    three, short, odd = speechlike(3.0), speechlike(0.1, seed=1), speechlike(3.01, seed=2)
    out = raw.extract_batch([clip("3s", three), clip("0.1s", short), clip("3.01s", odd)])
    for record, n in zip(out, (len(three), len(short), len(odd)), strict=True):
        frames = math.ceil(n / 320)
        assert record.available and record.values.shape == (frames, 512) and record.values.dtype == np.float32
        np.testing.assert_allclose(record.times, (np.arange(frames) + 0.5) * 0.02, atol=1e-6)
        assert record.valid.all() and len(record.valid) == frames
    assert [len(r.times) for r in out] == [150, 5, 151]

    # The kept frames are exactly the first ones of the padded 30 s window that faster-whisper's
    # transcribe encodes: the audio on the 16-bit grid, its mel without the last (padding) frame.
    mel = raw.model.feature_extractor(as_16bit(three))
    window = np.zeros((1, mel.shape[0], WINDOW_MEL), np.float32)
    window[0, :, : mel.shape[1] - 1] = mel[:, :-1]
    full = raw._encode(window)[0]
    assert full.shape == (1500, 512)
    np.testing.assert_array_equal(out[0].values, full[:150])


def test_long_audio_is_two_windows(raw: WhisperEncoderExtractor) -> None:
    samples = speechlike(45.0, seed=3)
    (record,) = raw.extract_batch([clip("45s", samples)])
    assert record.values.shape == (2250, 512)  # 1500 + 750 frames
    np.testing.assert_allclose(record.times[[0, 1499, 1500, -1]], [0.01, 29.99, 30.01, 44.99], atol=1e-4)
    mel = raw.model.feature_extractor(as_16bit(samples))  # normalised over the whole clip, as Whisper does
    windows = np.zeros((2, mel.shape[0], WINDOW_MEL), np.float32)
    windows[0] = mel[:, :3000]
    windows[1, :, : mel.shape[1] - 3001] = mel[:, 3000:-1]  # the last mel frame is padding
    expected = raw._encode(windows)
    np.testing.assert_allclose(record.values[:1500], expected[0], atol=1e-5)
    np.testing.assert_allclose(record.values[1500:], expected[1, :750], atol=1e-5)


def test_shorter_windows_restart_on_frame_boundaries(raw: WhisperEncoderExtractor) -> None:
    params = dict(whisper_model="base", compute_type="int8", pool_fps=None, batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="multiple of 0.02"):
        WhisperEncoderExtractor(window_s=1.01, **params)
    short_windows = WhisperEncoderExtractor(window_s=1.0, **params)
    (record,) = short_windows.extract_batch([clip("2.5s", speechlike(2.5, seed=12))])
    assert record.values.shape == (125, 512)  # 50 + 50 + 25 frames
    np.testing.assert_allclose(record.times, (np.arange(125) + 0.5) * 0.02, atol=1e-5)


def test_missing_records_and_order(raw: WhisperEncoderExtractor) -> None:
    good = speechlike(1.0)
    out = raw.extract_batch(
        [
            clip("none", None, reason="no_audio_stream"),
            clip("ok", good),
            clip("zeros", np.zeros(SR, np.float32)),
            clip("tiny", good[:100]),
            clip("nan", np.full(SR, np.nan, np.float32)),
        ]
    )
    assert [r.clip_id for r in out] == ["none", "ok", "zeros", "tiny", "nan"]
    assert [r.available for r in out] == [False, True, False, False, False]
    assert out[0].reason == "no_audio_stream"
    assert out[2].reason.startswith("silent") and out[3].reason.startswith("too_short")
    assert out[4].reason.startswith("invalid")
    for record in (out[0], out[2], out[3], out[4]):
        assert record.values.shape == (0, 512) and record.times.shape == (0,) and record.valid.shape == (0,)


def test_deterministic_and_independent_of_batch(raw: WhisperEncoderExtractor) -> None:
    a, b = speechlike(2.0, seed=4), speechlike(5.0, seed=5)
    alone = raw.extract_batch([clip("a", a)])[0]
    again = raw.extract_batch([clip("a", a)])[0]
    np.testing.assert_array_equal(alone.values, again.values)
    together = raw.extract_batch([clip("b", b), clip("a", a)])[1]
    np.testing.assert_allclose(together.values, alone.values, atol=1e-4)


def test_other_sample_rates_are_resampled(raw: WhisperEncoderExtractor) -> None:
    at8k = speechlike(2.0)[::2].copy()
    (record,) = raw.extract_batch([clip("8k", at8k, rate=8000)])
    assert record.values.shape == (100, 512)


def test_pooling_to_5_hz(raw: WhisperEncoderExtractor) -> None:
    samples = speechlike(3.01, seed=6)
    pooled = build_audio_extractor(AudioFeatureParams(pool_fps=5.0), device="cpu")
    (record,) = pooled.extract_batch([clip("p", samples)])
    (frames,) = raw.extract_batch([clip("p", samples)])
    assert record.values.shape == (16, 512)  # 151 frames: 15 full bins of 10 and one of 1
    np.testing.assert_allclose(record.times, (np.arange(16) + 0.5) / 5, atol=1e-6)
    np.testing.assert_allclose(record.values[0], frames.values[:10].mean(0), atol=1e-5)
    np.testing.assert_allclose(record.values[15], frames.values[150], atol=1e-5)


def test_long_clip_windows_pooled_as_encoded_equal_pooling_at_the_end(raw: WhisperEncoderExtractor) -> None:
    """A 61 s clip (three 30 s windows) pooled window by window, so a long clip never holds its
    50 Hz states: byte-identical to pooling the whole clip's frames afterwards."""
    samples = speechlike(61.3, seed=7)
    (frames,) = raw.extract_batch([clip("long", samples)])
    (pooled,) = build_audio_extractor(AudioFeatureParams(pool_fps=5.0), device="cpu").extract_batch(
        [clip("long", samples)]
    )
    values, times = pool_frames(frames.values, frames.times, 5.0)
    assert pooled.values.shape == (307, 512)
    np.testing.assert_array_equal(pooled.values, values)
    np.testing.assert_array_equal(pooled.times, times)


def test_pool_frames_bins() -> None:
    values = np.arange(25, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    times = (np.arange(25) + 0.5) * 0.02
    pooled, centres = pool_frames(values, times, 5.0)
    np.testing.assert_allclose(pooled[:, 0], [4.5, 14.5, 22.0])
    np.testing.assert_allclose(centres, [0.1, 0.3, 0.5])
    same, same_t = pool_frames(values, times, None)
    assert same is values and same_t is times
    empty, empty_t = pool_frames(np.zeros((0, 3), np.float32), np.zeros(0), 5.0)
    assert empty.shape == (0, 3) and empty_t.shape == (0,)


def test_real_speech_frames(realdata: Path, raw: WhisperEncoderExtractor) -> None:
    samples, _ = load_audio(realdata / "video" / "video-retalking_2.mp4")
    (record,) = raw.extract_batch([clip("r2", samples)])
    assert record.values.shape == (math.ceil(len(samples) / 320), 512)
    assert np.isfinite(record.values).all() and record.values.std() > 0.1


# ------------------------------------------------------------------- Hugging Face models
def _tiny_config(kind: str, **extra):
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig

    cls = {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig, "wavlm": WavLMConfig}[kind]
    return cls(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        **extra,
    )


def _save(folder: Path, model, *, attention_mask: bool) -> str:
    from transformers import Wav2Vec2FeatureExtractor

    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True, return_attention_mask=attention_mask
    ).save_pretrained(folder)
    return str(folder)


def _reference(model, samples: np.ndarray) -> np.ndarray:
    """Last hidden states of one unpadded, normalised window: (T, H)."""
    x = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    with torch.inference_mode():
        out = model(torch.from_numpy(x[None]))
    return out.last_hidden_state[0].numpy()


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_hf_model_frames(tmp_path: Path, kind: str) -> None:
    from transformers import AutoModel

    torch.manual_seed(0)
    folder = _save(tmp_path / kind, AutoModel.from_config(_tiny_config(kind)), attention_mask=True)
    extractor = build_audio_extractor(AudioFeatureParams(model=folder, pool_fps=None, window_s=1.0), device="cpu")
    assert isinstance(extractor, HFAudioExtractor) and extractor.dim == 32 and extractor.modality == "audio"
    long, short = speechlike(2.5, seed=7), speechlike(0.6, seed=8)
    out = extractor.extract_batch(
        [clip("long", long), clip("none", None, reason="no_audio_stream"), clip("short", short)]
    )
    assert [r.available for r in out] == [True, False, True]
    model = extractor.model
    # 2.5 s in 1 s windows: 49 + 49 + 24 frames, each window run alone gives the same states.
    expected = np.concatenate([_reference(model, long[s : s + SR]) for s in range(0, len(long), SR)])
    assert out[0].values.shape == (122, 32)
    np.testing.assert_allclose(out[0].values, expected, atol=1e-4)
    # Each window's frames count from its own start: 49 frames per second, then a 20 ms step.
    np.testing.assert_allclose(out[0].times[[0, 1, 48, 49, 98]], [0.01, 0.03, 0.97, 1.01, 2.01], atol=1e-6)
    np.testing.assert_allclose(out[2].values, _reference(model, short), atol=1e-4)
    again = extractor.extract_batch([clip("long", long)])[0]
    np.testing.assert_allclose(again.values, out[0].values, atol=1e-5)


def test_hf_without_attention_mask_batches_only_equal_lengths(tmp_path: Path) -> None:
    from transformers import AutoModel

    torch.manual_seed(1)
    folder = _save(tmp_path / "w2v", AutoModel.from_config(_tiny_config("wav2vec2")), attention_mask=False)
    extractor = build_audio_extractor(
        AudioFeatureParams(model=folder, pool_fps=None, window_s=1.0, batch_size=4), device="cpu"
    )
    assert not extractor.use_mask
    a, b = speechlike(1.7, seed=9), speechlike(0.45, seed=10)
    out = extractor.extract_batch([clip("a", a), clip("b", b), clip("tiny", a[:300])])
    np.testing.assert_allclose(out[1].values, _reference(extractor.model, b), atol=1e-4)
    expected = np.concatenate([_reference(extractor.model, a[:SR]), _reference(extractor.model, a[SR:])])
    np.testing.assert_allclose(out[0].values, expected, atol=1e-4)
    assert not out[2].available and out[2].reason.startswith("too_short")


def test_emotion_head_appends_logits(tmp_path: Path) -> None:
    """audeering-style checkpoint: hidden states + the head's 3 logits on the mean-pooled states."""
    torch.manual_seed(2)
    config = _tiny_config(
        "wav2vec2",
        architectures=["Wav2Vec2ForSpeechClassification"],
        num_labels=3,
        final_dropout=0.1,
        id2label={0: "arousal", 1: "dominance", 2: "valence"},
        label2id={"arousal": 0, "dominance": 1, "valence": 2},
    )
    source = emotion_model_class()(config).eval()
    folder = _save(tmp_path / "emo", source, attention_mask=True)
    extractor = build_audio_extractor(AudioFeatureParams(model=folder, pool_fps=5.0), device="cpu")
    assert extractor.has_head and extractor.dim == 35
    samples = speechlike(1.2, seed=11)
    (record,) = extractor.extract_batch([clip("e", samples)])
    states = _reference(source.wav2vec2, samples)
    with torch.inference_mode():
        logits = source.classifier(torch.from_numpy(states.mean(0, keepdims=True)))[0].numpy()
    assert record.values.shape == (6, 35)  # 59 frames at 50 Hz -> 6 bins at 5 Hz
    np.testing.assert_allclose(record.values[:, 32:], np.broadcast_to(logits, (6, 3)), atol=1e-4)
    np.testing.assert_allclose(record.values[0, :32], states[:10].mean(0), atol=1e-4)


def test_emotion_config_without_head_weights_is_an_error(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Model

    torch.manual_seed(3)
    config = _tiny_config("wav2vec2", architectures=["Wav2Vec2ForSpeechClassification"], num_labels=3)
    folder = _save(tmp_path / "plain", Wav2Vec2Model(config), attention_mask=True)
    # save_pretrained writes the saving class's name; a hub config can still claim the head.
    config_file = Path(folder) / "config.json"
    raw = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**raw, "architectures": ["Wav2Vec2ForSpeechClassification"]}))
    with pytest.raises(ValueError, match="lacks"):
        build_audio_extractor(AudioFeatureParams(model=folder), device="cpu")
