"""One Whisper encoder pass serves ASR and the audio features (pipeline/whisper/encoder_states.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fixtures.speech import load_audio
from pipeline.asr import AsrClip
from pipeline.asr.recognizers import build_recognizer, transcribe_clip
from pipeline.config import AsrParams, AudioFeatureParams
from pipeline.decoded import AudioInput
from pipeline.features.audio import build_audio_extractor
from pipeline.whisper import encoder_states, geometry, windows

from .conftest import REALDATA


@pytest.fixture(scope="module")
def speech() -> list[AudioInput]:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent (it sits beside the repo in CI)")
    files = sorted((REALDATA / "audio" / "ravdess" / "Actor_02").glob("*.wav"))[:4]
    clips = []
    for path in files:
        samples, rate = load_audio(path)
        clips.append(AudioInput(path.stem, samples, rate, len(samples) / rate))
    return clips


@pytest.fixture(scope="module")
def recognizer():
    return build_recognizer(AsrParams(), device="cpu", cpu_threads=2)


@pytest.fixture(scope="module")
def extractor():
    return build_audio_extractor(AudioFeatureParams(), device="cpu")


def kept(recognizer, item: AudioInput) -> np.ndarray | None:
    return transcribe_clip(recognizer, AsrClip(item.clip_id, item.samples, item.sample_rate)).encoder_states


def test_kept_states_give_the_features_of_a_second_encoder_pass(
    speech, recognizer, extractor, monkeypatch, tmp_path: Path
) -> None:
    # Through the shard files, float16 as stored.
    folder = tmp_path / "encoder"
    writer = encoder_states.StatesWriter(folder, model=extractor.model_name, device="cpu")
    for item in speech:
        states = kept(recognizer, item)
        assert states.shape == (geometry.real_frames(len(item.samples)), extractor.dim)
        writer.add(item.clip_id, states)
    writer.close()
    where = encoder_states.index(folder, extractor.model_name)
    assert sorted(where) == sorted(i.clip_id for i in speech)
    assert encoder_states.index(folder, "whisper-encoder:tiny.en:int8") == {}  # another encoder: not used
    stored = dict(encoder_states.read(where, [i.clip_id for i in speech]))

    encoded = extractor.extract_batch(speech)
    calls = []
    monkeypatch.setattr(extractor, "_encode", lambda batch: calls.append(batch) or 1 / 0)
    with_states = [
        dataclasses.replace(i, encoder_states=stored[i.clip_id], encoder_model=extractor.model_name) for i in speech
    ]
    shared = extractor.extract_batch(with_states)
    assert calls == []  # no second encoder pass
    for a, b in zip(encoded, shared, strict=True):
        assert a.available and b.available
        np.testing.assert_array_equal(a.times, b.times)
        va, vb = a.values.astype(np.float64), b.values.astype(np.float64)
        cosine = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
        assert cosine.min() > 0.99999  # measured 0.99999998: float16 storage is the only difference
        assert np.abs(va - vb).max() < 1e-3 * np.abs(va).max()


def long_clip(speech: list[AudioInput]) -> AudioInput:
    """75 s: speech with pauses for 27 s, 3 s of silence, 40 s of tones and noise, speech again."""
    rate = speech[0].sample_rate
    t = np.arange(40 * rate) / rate
    music = 0.05 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.5 * t) + 0.02 * np.random.randn(len(t))
    pause = np.zeros(rate, np.float32)
    first = np.zeros(30 * rate, np.float32)
    first[: 27 * rate] = np.concatenate([p for item in speech * 3 for p in (item.samples, pause)])[: 27 * rate]
    samples = np.concatenate([first, music.astype(np.float32), speech[0].samples, pause]).astype(np.float32)
    return AudioInput("long", samples, rate, len(samples) / rate)


@pytest.mark.slow  # about 20 s: two passes over 75 s of audio
def test_one_encoder_pass_at_any_length(speech, recognizer, extractor, monkeypatch) -> None:
    item = long_clip(speech)
    states = kept(recognizer, item)
    n_windows = windows.count(len(item.samples))
    assert n_windows == 3 and states.shape == (geometry.real_frames(len(item.samples)), extractor.dim)
    # The decoder ran on windows 0 and 2 only (1 is tones and noise); every cover window it did not
    # encode itself was encoded once for the features.
    assert recognizer.passes["windows_skipped"] == 1
    assert 1 <= recognizer.passes["cover"] <= n_windows - 1

    encoded = extractor.extract_batch([item])[0]
    calls = []
    monkeypatch.setattr(extractor, "_encode", lambda batch: calls.append(batch) or 1 / 0)
    with_states = dataclasses.replace(
        item, encoder_states=encoder_states.as_stored(states), encoder_model=extractor.model_name
    )
    shared = extractor.extract_batch([with_states])[0]
    assert calls == []  # features@audio: 0 encoder passes
    np.testing.assert_array_equal(encoded.times, shared.times)
    va, vb = encoded.values.astype(np.float64), shared.values.astype(np.float64)
    cosine = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert cosine.min() > 0.9999  # measured 0.99999999 on 112 s


def test_no_states_with_vad_or_unshared(speech) -> None:
    with_vad = build_recognizer(AsrParams(vad=True), device="cpu", cpu_threads=2)
    assert kept(with_vad, speech[0]) is None
    assert not build_recognizer(AsrParams(share_encoder=False), device="cpu", cpu_threads=2).keep_states


def test_states_of_another_clip_length_are_not_used(speech, recognizer, extractor, monkeypatch) -> None:
    states = kept(recognizer, speech[0])
    calls = []
    encode = extractor._encode
    monkeypatch.setattr(extractor, "_encode", lambda batch: calls.append(len(batch)) or encode(batch))
    shorter = dataclasses.replace(
        speech[0], samples=speech[0].samples[:-16000], encoder_states=states, encoder_model=extractor.model_name
    )
    assert extractor.extract_batch([shorter])[0].available and calls == [1]
