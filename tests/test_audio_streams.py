"""Which audio stream decode reads, and what counts as silence: a multi-track recording whose first
(even default) audio track is digital silence keeps the speech of its second, the status message
naming the stream; a track holding only a DC offset is silent_audio. Made from real recordings in
``../shared/realdata`` inside the tests."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DecodeParams
from pipeline.decode import decode_clip
from pipeline.levels import active_level_dbfs, level_dbfs

from .conftest import REPO

VIDEO = REPO.parent / "shared" / "realdata" / "video" / "video-retalking_1.mp4"
PARAMS = DecodeParams()

needs_media = pytest.mark.skipif(
    not VIDEO.is_file() or shutil.which("ffmpeg") is None, reason="needs ../shared/realdata and the ffmpeg CLI"
)


def two_track(path: Path, default: int) -> Path:
    """The real talking-head clip with a silent audio track first and its speech second;
    ``default``: which of the two audio tracks carries the default disposition."""
    dispositions = ["-disposition:a:0", "default" if default == 0 else "0"]
    dispositions += ["-disposition:a:1", "default" if default == 1 else "0"]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(VIDEO), "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono",
         "-map", "0:v", "-map", "1:a", "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-shortest",
         *dispositions, str(path)],
        check=True,
    )  # fmt: skip
    return path


@needs_media
@pytest.mark.parametrize("default", [0, 1])
def test_second_track_speech_is_kept_and_named(tmp_path: Path, default: int) -> None:
    clip = decode_clip(two_track(tmp_path / "two.mp4", default), PARAMS, threads=1)
    alone = decode_clip(VIDEO, PARAMS, threads=1)
    assert clip.report.status == "ok" and clip.report.faults == []
    assert "stream #2 of 2 audio streams" in clip.report.message
    assert ("silent: #1" in clip.report.message) == (default == 0)  # the silent default was checked and passed over
    assert clip.report.audio_active_dbfs == pytest.approx(alone.report.audio_active_dbfs, abs=1.0)
    n = min(len(clip.audio.samples), len(alone.audio.samples))
    a, b = clip.audio.samples[:n], alone.audio.samples[:n]
    assert float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)) > 0.99  # the same speech (re-encoded)


def test_dc_offset_is_not_signal() -> None:
    rate = PARAMS.sample_rate
    dc = np.full(rate * 2, 0.25, np.float32)
    assert level_dbfs(dc) == active_level_dbfs(dc, rate) == -200.0
    tone = 0.01 * np.sin(2 * np.pi * 440 * np.arange(rate * 2) / rate).astype(np.float32)
    assert active_level_dbfs(tone + 0.25, rate) == pytest.approx(active_level_dbfs(tone, rate), abs=0.01)


def test_dc_only_track_is_silent_audio(tmp_path: Path) -> None:
    path = tmp_path / "dc.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(48000)
        handle.writeframes(np.full(48000 * 2, 8000, "<i2").tobytes())  # +0.24 full scale, nothing else
    clip = decode_clip(path, PARAMS, threads=1)
    assert "silent_audio" in clip.report.faults and clip.report.audio_active_dbfs < PARAMS.silence_dbfs
    assert clip.audio.samples is not None and np.mean(clip.audio.samples) == pytest.approx(0.24, abs=0.01)
