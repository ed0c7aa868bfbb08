"""Damaged files: what decoded is used (``partial``), nothing usable is ``corrupt``, and NaN/Inf
audio samples are repaired (or the track dropped), never read as silence.

Media is generated here: float WAVs written with scipy (they can hold NaN/Inf, as a buggy
recorder's output does), index clips from ``tests/media.py``, muxed with ffmpeg-python.
"""

from __future__ import annotations

from pathlib import Path

import av
import ffmpeg
import numpy as np
import pytest
from scipy.io import wavfile

from pipeline.config import DecodeParams
from pipeline.decode import ClipDecoder, Observations, classify

from .media import write_index_clip

PARAMS = DecodeParams()


def speech_level_signal(n: int, rate: int, dbfs: float = -39.0) -> np.ndarray:
    """(n,) float32 tones at an RMS of ``dbfs`` (speech recorded quietly sits near -40 dBFS)."""
    t = np.arange(n) / rate
    raw = np.sin(2 * np.pi * 180 * t) + 0.6 * np.sin(2 * np.pi * 410 * t) + 0.3 * np.sin(2 * np.pi * 950 * t)
    return (raw / np.sqrt(np.mean(raw**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def with_nonfinite(samples: np.ndarray, count: int) -> np.ndarray:
    """A copy with ``count`` samples, spread over the track, set to NaN, +Inf or -Inf in turn."""
    out = samples.copy()
    where = np.linspace(100, len(out) - 100, count).astype(int)
    out[where] = np.resize(np.array([np.nan, np.inf, -np.inf], np.float32), count)
    return out


def decode(path: Path):
    batches = []
    with ClipDecoder(PARAMS, threads=1) as decoder:
        report, audio = decoder.decode(path, path.stem, batches.append)
    return report, audio, batches


def test_a_few_nan_samples_in_a_float_wav_are_set_to_zero_not_silence(tmp_path: Path) -> None:
    """10 bad samples in 176,400 gave -200 dBFS and `silent_audio` (audio and text dropped)."""
    path = tmp_path / "glitch.wav"
    wavfile.write(path, 16000, with_nonfinite(speech_level_signal(176_400, 16000), 10))
    report, audio, _ = decode(path)
    assert report.status == "partial" and report.faults == ["partial", "no_video_stream"]
    assert "audio: 10 of 176,400 samples at 16000 Hz were NaN/Inf, set to 0" in report.message
    assert "silent" not in report.message and report.has_audio
    assert report.audio_dbfs == pytest.approx(-39.0, abs=0.1)
    assert np.isfinite(audio.samples).all() and np.count_nonzero(audio.samples == 0) >= 10


def test_resampled_nan_samples_are_repaired_too(tmp_path: Path) -> None:
    """At 44.1 kHz the resampler spreads each bad sample over a few dozen output samples."""
    path = tmp_path / "glitch44.wav"
    wavfile.write(path, 44100, with_nonfinite(speech_level_signal(176_400, 44100), 10))
    report, audio, _ = decode(path)
    assert report.status == "partial" and "were NaN/Inf, set to 0" in report.message
    assert np.isfinite(audio.samples).all() and report.audio_dbfs == pytest.approx(-39.0, abs=0.3)


def test_mostly_nan_audio_is_dropped_and_the_video_kept(tmp_path: Path) -> None:
    video = tmp_path / "video.mkv"
    write_index_clip(video, [k / 25 for k in range(50)])  # 2 s, no audio stream
    wav = tmp_path / "bad.wav"
    wavfile.write(wav, 16000, with_nonfinite(speech_level_signal(32_000, 16000), 1_600))  # 5%
    both = tmp_path / "both.mkv"
    ffmpeg.output(ffmpeg.input(str(video)).video, ffmpeg.input(str(wav)).audio, str(both), c="copy").run(quiet=True)
    with av.open(str(both)) as container:
        assert container.streams.audio[0].codec_context.name == "pcm_f32le"  # the NaNs reached the file
    report, audio, batches = decode(both)
    assert report.status == "partial" and report.has_video and report.n_frames == 10
    assert "1,600 of 32,000 samples at 16000 Hz were NaN/Inf (over 1%): audio dropped" in report.message
    assert "using what decoded: 10 frames" in report.message and "the audio" not in report.message
    assert audio.samples is None and not report.has_audio and report.audio_dbfs is None
    assert sum(len(b.frame_index) for b in batches) == 10

    # The same track alone: nothing usable is left, so the file is corrupt.
    report, audio, _ = decode(wav)
    assert report.status == "corrupt" and "audio dropped" in report.message and audio.samples is None


def test_a_clean_track_is_passed_through_untouched(tmp_path: Path) -> None:
    path = tmp_path / "clean.wav"
    signal = speech_level_signal(16_000, 16000)
    wavfile.write(path, 16000, signal)
    report, audio, _ = decode(path)
    assert report.status == "no_video_stream" and np.array_equal(audio.samples, signal)


@pytest.mark.parametrize(
    ("obs", "status", "message"),
    [
        (Observations(errors=["cannot open: X"]), "corrupt", "cannot open: X"),
        (
            Observations(errors=["video: 3 of 9 packets failed"], has_video_stream=True, has_audio_stream=False,
                         n_frames=4, n_face_frames=4),
            "partial",
            "video: 3 of 9 packets failed; using what decoded: 4 frames; no audio stream",
        ),
        (
            Observations(errors=["video: demuxing stopped"], has_video_stream=True, has_audio_stream=True,
                         n_frames=0, audio_samples=16000, audio_dbfs=-30.0),
            "partial",
            "video: demuxing stopped; using what decoded: the audio",
        ),
        (
            Observations(has_video_stream=False, has_audio_stream=True, audio_samples=1000, audio_nonfinite=11),
            "corrupt",
            "audio: 11 of 1,000 samples at 16000 Hz were NaN/Inf (over 1%): audio dropped; "
            "no video stream (audio-only file)",
        ),
    ],
)  # fmt: skip
def test_classify_damage(obs: Observations, status: str, message: str) -> None:
    verdict = classify(obs, PARAMS)
    assert (verdict.status, verdict.message) == (status, message)
