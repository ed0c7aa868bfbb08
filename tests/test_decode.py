"""Decode stage on generated media: the timestamp sampling rule, audio, every fault, the stage run.

Clips come from ``tests/media.py``: index clips show their frame number as a 4x4 bit grid
(``read_index``), so a decoded sample says which source frame it came from. Timestamps are whole
milliseconds (the clips' 1/1000 time base), so the expected frame for sample i is computed in
integer milliseconds: the last k with pts_ms[k] <= 200 * i.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import av
import ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import DecodeParams
from pipeline.decode import STATUS_PRIORITY, ClipDecoder, decode_clip, decode_manifest, sample_frames
from pipeline.decoded import FRAME_ROW_GROUP, iter_clip_audio, iter_clip_frames
from pipeline.demo.media import mux_clip

from .conftest import REPO
from .media import index_frame, read_index, write_index_clip

PARAMS = DecodeParams()
SR = PARAMS.sample_rate


def expected_sources(pts_ms: list[int], n_samples: int) -> list[int]:
    """Index of the frame on screen at t_i = i / 5 s: the last k with pts_ms[k] <= 200 i."""
    return [max(k for k, p in enumerate(pts_ms) if p <= 200 * i) for i in range(n_samples)]


def header_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


def tone(seconds: float, *, freq: float = 440.0, amp: float = 0.5, rate: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def decoder() -> ClipDecoder:
    with ClipDecoder(PARAMS, threads=1) as clip_decoder:
        yield clip_decoder


def run(decoder: ClipDecoder, path: Path):
    batches = []
    report, audio = decoder.decode(path, path.stem, batches.append)
    return report, audio, batches


# ------------------------------------------------------------------------------ sampling rule
@pytest.mark.parametrize("fps, n_frames", [(29.97, 300), (22.1, 221)])
@pytest.mark.parametrize("threads", [1, 2])
def test_constant_rate_sample_is_last_frame_at_or_before_t(
    tmp_path: Path, fps: float, n_frames: int, threads: int
) -> None:
    path = tmp_path / "clip.mp4"
    pts_s = [k / fps for k in range(n_frames)]
    write_index_clip(path, pts_s)
    pts_ms = [round(p * 1000) for p in pts_s]
    duration = header_duration(path)
    assert duration == pytest.approx(n_frames / fps, abs=0.002)  # 10.01 s at 29.97, 10.0 s at 22.1
    samples = list(sample_frames(path, fps=5.0, threads=threads))
    assert len(samples) == math.floor(duration * 5) == 50  # an index rule emits 51 for 10.01 s
    sources = expected_sources(pts_ms, len(samples))
    assert [i for i, _, _ in samples] == list(range(50))
    assert [read_index(rgb) for _, _, rgb in samples] == sources
    assert [pts for _, pts, _ in samples] == pytest.approx([pts_ms[k] / 1000 for k in sources], abs=1e-9)
    # At 29.97 fps the time rule and the index rule round(i * fps / 5) disagree on most samples.
    if fps == 29.97:
        assert sum(s != round(i * fps / 5) for i, s in enumerate(sources)) >= 40


def test_b_frames_and_lossy_coding_keep_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "bframes.mp4"
    pts_s = [k / 29.97 for k in range(150)]
    mux_clip(path, (index_frame(k, size=96) for k in range(150)), pts_s, crf=18, bframes=True)
    samples = list(sample_frames(path, fps=5.0))
    sources = expected_sources([round(p * 1000) for p in pts_s], len(samples))
    assert len(samples) == math.floor(header_duration(path) * 5) == 25
    assert [read_index(rgb) for _, _, rgb in samples] == sources


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_rate_with_bogus_container_fps(tmp_path: Path, suffix: str) -> None:
    """Irregular gaps of 10-300 ms, the container claiming 1000 fps (as Hume-Vidmimic2's files do).

    The .mkv has no stream duration in its header: the duration comes from the demux-only pass.
    """
    rng = np.random.default_rng(7)
    gaps = rng.choice([10, 17, 33, 40, 66, 120, 300], size=120)
    pts_ms = [0, *np.cumsum(gaps).tolist()]
    path = tmp_path / f"vfr{suffix}"
    write_index_clip(path, [p / 1000 for p in pts_ms], declared_fps=1000.0)
    with av.open(str(path)) as container:
        assert container.streams.video[0].base_rate == 1000  # what ffprobe calls r_frame_rate
    clip = decode_clip(path, PARAMS)
    median_gap = int(np.median(np.diff(pts_ms)))
    duration = (pts_ms[-1] + median_gap) / 1000
    assert clip.report.duration_s == pytest.approx(duration, abs=1e-9)
    n = math.floor(duration * 5)
    assert clip.report.n_frames == n == len(clip.visual.times)
    sources = expected_sources(pts_ms, n)
    assert clip.pts_s.tolist() == pytest.approx([pts_ms[k] / 1000 for k in sources], abs=1e-9)
    assert clip.visual.times.tolist() == pytest.approx([i / 5 for i in range(n)], abs=1e-12)
    pixels = [read_index(rgb) for _, _, rgb in sample_frames(path, fps=5.0)]
    assert pixels == sources


def test_resize_keeps_aspect_never_upscales(tmp_path: Path) -> None:
    wide = tmp_path / "wide.mp4"
    frames = [np.full((360, 1280, 3), 128, np.uint8)] * 3
    mux_clip(wide, frames, [0.0, 0.2, 0.4])
    assert next(iter(sample_frames(wide, fps=5.0, max_side=640)))[2].shape == (180, 640, 3)
    small = tmp_path / "small.mp4"
    mux_clip(small, [np.full((96, 64, 3), 128, np.uint8)] * 3, [0.0, 0.2, 0.4])
    assert next(iter(sample_frames(small, fps=5.0, max_side=640)))[2].shape == (96, 64, 3)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI to write rotation metadata")
def test_rotation_metadata_is_applied_like_ffmpeg(tmp_path: Path) -> None:
    """A phone video stored landscape with a 90-degree display matrix comes out portrait,
    pixel-identical to the ffmpeg CLI's auto-rotated output."""
    source = tmp_path / "landscape.mp4"
    frames = []
    for k in range(10):
        frame = np.zeros((64, 128, 3), np.uint8)
        frame[:, :64] = index_frame(k, size=64)
        frame[:, 64:, 0] = 200  # red right half: shows which way the picture turned
        frames.append(frame)
    write_pts = [k / 10 for k in range(10)]
    mux_clip(source, frames, write_pts, crf=0, bframes=False)
    rotated = tmp_path / "rotated.mp4"
    # ffmpeg-python drives the Debian ffmpeg CLI: an encoder and a decoder independent of PyAV's.
    ffmpeg.input(str(source)).output(str(rotated), c="copy", **{"metadata:s:v:0": "rotate=90"}).run(quiet=True)
    raw, _ = ffmpeg.input(str(rotated)).output("pipe:", vframes=1, f="rawvideo", pix_fmt="rgb24").run(quiet=True)
    reference = np.frombuffer(raw, np.uint8).reshape(128, 64, 3)
    ours = next(iter(sample_frames(rotated, fps=5.0)))[2]
    assert ours.shape == (128, 64, 3)
    np.testing.assert_array_equal(ours, reference)


# ------------------------------------------------------------------------------ audio
def test_audio_length_rate_and_tone(decoder: ClipDecoder, tmp_path: Path) -> None:
    """44.1 kHz AAC in, 16 kHz mono float32 out, round(d * 16000) samples, 440 Hz kept."""
    path = tmp_path / "tone.mp4"
    pts_s = [k / 25 for k in range(100)]  # 4.0 s of video
    write_index_clip(path, pts_s, audio=tone(4.0, rate=44100), sample_rate=44100)
    report, audio, _ = run(decoder, path)
    assert report.duration_s == pytest.approx(4.0, abs=1e-9)
    assert audio.sample_rate == SR and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert len(audio.samples) == round(report.duration_s * SR) == 64000
    steady = audio.samples[8000:56000].astype(np.float64)  # away from AAC's start and end ramps
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    assert np.fft.rfftfreq(len(steady), 1 / SR)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)
    rms = math.sqrt(float(np.mean(steady**2)))
    assert 20 * math.log10(rms / (0.5 / math.sqrt(2))) == pytest.approx(0.0, abs=0.5)  # level kept within 0.5 dB
    assert report.audio_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.5)


def test_audio_only_wav_is_no_video_stream_with_audio(decoder: ClipDecoder, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    write_wav(path, tone(1.5, freq=300.0, rate=48000), 48000)
    report, audio, batches = run(decoder, path)
    assert report.status == "no_video_stream" and report.faults == ["no_video_stream"]
    assert "no video stream" in report.message
    assert not report.has_video and report.has_audio and report.n_frames == 0 and batches == []
    assert report.face_fraction is None
    assert len(audio.samples) == 24000


# ------------------------------------------------------------------------------ faults
def test_no_audio_stream(decoder: ClipDecoder, tmp_path: Path) -> None:
    path = tmp_path / "mute.mp4"
    write_index_clip(path, [k / 25 for k in range(50)])
    report, audio, _ = run(decoder, path)
    assert report.status == "no_audio_stream"
    assert report.faults == ["no_audio_stream", "no_face"]  # index frames hold no face either
    assert audio.samples is None and not report.has_audio and report.audio_dbfs is None
    assert report.message.startswith("no audio stream; 0 of 10 frames have a face")


def test_silent_audio(decoder: ClipDecoder, tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    write_index_clip(path, [k / 25 for k in range(50)], audio=np.zeros(32000, np.float32))
    report, audio, _ = run(decoder, path)
    assert report.status == "silent_audio" and report.faults[0] == "silent_audio"
    assert report.has_audio and report.audio_active_dbfs < PARAMS.silence_dbfs
    assert "dBFS (loudest 10% of 50 ms frames) < silence_dbfs -80.0" in report.message
    assert len(audio.samples) == 32000 and not np.any(audio.samples)


def test_no_face_in_noise(decoder: ClipDecoder, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.mp4"
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(30)]
    mux_clip(path, frames, [k / 15 for k in range(30)], audio=tone(2.0))
    report, _, batches = run(decoder, path)
    assert report.status == "no_face" and report.faults == ["no_face"]
    assert report.n_frames == 10 and report.n_face_frames == 0 and report.face_fraction == 0.0
    rows = batches[0]
    assert rows.crops == [None] * 10 and not np.any(rows.face_score) and np.isnan(rows.face_box).all()


def test_too_short_has_no_frames(decoder: ClipDecoder, tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_index_clip(path, [0.0, 0.04], audio=tone(0.1))  # 0.08 s
    report, audio, batches = run(decoder, path)
    assert report.status == "too_short" and "< min_duration_s 0.3 s" in report.message
    assert report.n_frames == 0 and batches == [] and report.face_fraction is None
    assert len(audio.samples) == round(report.duration_s * SR)


def test_truncated_file_is_corrupt(decoder: ClipDecoder, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    write_index_clip(whole, [k / 25 for k in range(100)], audio=tone(4.0))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # MP4 index at the end: gone
    report, audio, batches = run(decoder, cut)
    assert report.status == "corrupt" and report.message.startswith("cannot open: ")
    assert audio.samples is None and batches == []


def test_truncated_faststart_file_is_partial(decoder: ClipDecoder, tmp_path: Path) -> None:
    """Index in front (streamable MP4): the header promises 8 s, the data stops about half way;
    what decoded is kept and the message says what was lost."""
    whole = tmp_path / "whole.mp4"
    write_index_clip(whole, [k / 25 for k in range(200)], audio=tone(8.0))
    fast = tmp_path / "fast.mp4"
    with av.open(str(whole)) as src, av.open(str(fast), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    report, _, batches = run(decoder, cut)
    assert report.status == "partial" and report.duration_s == pytest.approx(8.0, abs=0.05)
    assert "truncated" in report.message or "demux" in report.message
    assert "using what decoded: " in report.message and report.has_video
    assert 0 < report.n_frames < 40 and sum(len(b.frame_index) for b in batches) == report.n_frames


def test_random_bytes_and_missing_file_are_corrupt(decoder: ClipDecoder, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    report, audio, _ = run(decoder, junk)
    assert report.status == "corrupt" and report.message.startswith("cannot open: ")
    assert "InvalidDataError" in report.message
    missing = tmp_path / "missing.mp4"
    report, audio, _ = run(decoder, missing)
    assert report.status == "corrupt" and report.message == f"file not found: {missing}"
    assert audio.samples is None and report.duration_s is None and not report.has_video


def test_status_priority_order() -> None:
    order = "corrupt error too_short partial no_video_stream no_audio_stream silent_audio no_face"
    assert " ".join(STATUS_PRIORITY) == order


# ------------------------------------------------------------------------------ stage
def make_mixed(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(clip_id, path, split) rows mixing good and bad files, good ones first and last."""
    media = tmp_path / "media"
    media.mkdir()
    rows = []

    def add(name: str, path: Path, split: str = "train") -> None:
        rows.append((name, str(path), split))

    write_index_clip(media / "a.mp4", [k / 25 for k in range(75)], audio=tone(3.0))
    add("a", media / "a.mp4")
    (media / "junk.mp4").write_bytes(b"\x00\x01garbage" * 100)
    add("junk", media / "junk.mp4")
    add("missing", media / "missing.mp4", "valid")
    write_index_clip(media / "short.mkv", [0.0, 0.05], audio=tone(0.1))
    add("short", media / "short.mkv", "valid")
    write_wav(media / "voice.wav", tone(1.0, freq=200.0), SR)
    add("voice", media / "voice.wav", "test")
    write_index_clip(media / "mute.mkv", [k / 30 for k in range(60)])
    add("mute", media / "mute.mkv", "test")
    write_index_clip(media / "b.mp4", [k / 22.1 for k in range(50)], audio=tone(2.3))
    add("b", media / "b.mp4", "test")
    return rows


def test_stage_keeps_every_row_in_order(tmp_path: Path) -> None:
    rows = make_mixed(tmp_path)
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(
        pa.table({"clip_id": [r[0] for r in rows], "path": [r[1] for r in rows], "split": [r[2] for r in rows]}),
        manifest,
    )
    params = tmp_path / "params.yaml"
    params.write_text("decode:\n  clips_per_shard: 3\n  workers: 2\n")
    out, status_path = tmp_path / "decoded", tmp_path / "status.parquet"
    out.mkdir()
    (out / "frames-00009.parquet").write_bytes(b"stale")  # from an earlier, larger run
    command = [sys.executable, "-m", "stages.decode", "--params", str(params), "--manifest", str(manifest)]
    result = subprocess.run(
        [*command, "--out", str(out), "--status", str(status_path), "--timeline", str(tmp_path / "timeline.parquet")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    status = pq.read_table(status_path).to_pylist()
    assert [s["clip_id"] for s in status] == [r[0] for r in rows]
    assert [(s["split"], s["path"]) for s in status] == [(r[2], r[1]) for r in rows]
    by_id = {s["clip_id"]: s for s in status}
    assert {k: by_id[k]["status"] for k in by_id} == {
        "a": "no_face",
        "junk": "corrupt",
        "missing": "corrupt",
        "short": "too_short",
        "voice": "no_video_stream",
        "mute": "no_audio_stream",
        "b": "no_face",
    }
    assert by_id["a"]["faults"] == ["no_face"] and by_id["a"]["n_frames"] == 15
    assert by_id["missing"]["message"].startswith("file not found")
    assert sorted(p.name for p in out.iterdir()) == [
        "audio-00000.parquet",
        "audio-00001.parquet",
        "audio-00002.parquet",
        "frames-00000.parquet",
        "frames-00001.parquet",
        "frames-00002.parquet",
    ]

    frames = pa.concat_tables([pq.read_table(out / f"frames-{k:05d}.parquet") for k in range(3)])
    counts = {}
    for clip_id in frames.column("clip_id").to_pylist():
        counts[clip_id] = counts.get(clip_id, 0) + 1
    assert counts == {s["clip_id"]: s["n_frames"] for s in status if s["n_frames"]}
    assert pq.read_schema(out / "frames-00000.parquet").metadata[b"crop_size"] == b"160"

    visual = list(iter_clip_frames(out))
    assert [v.clip_id for v in visual] == [r[0] for r in rows]
    assert [len(v.times) for v in visual] == [s["n_frames"] for s in status]
    audio = list(iter_clip_audio(out))
    assert [a.clip_id for a in audio] == [r[0] for r in rows]
    for item, row in zip(audio, status, strict=True):
        assert (item.samples is not None) == row["has_audio"]
        if item.samples is not None:
            assert len(item.samples) == round(row["duration_s"] * SR)
    assert [a.clip_id for a in iter_clip_audio(out, clip_ids={"b", "voice"})] == ["voice", "b"]
    assert [v.clip_id for v in iter_clip_frames(out, clip_ids=["b", "junk"])] == ["junk", "b"]

    # One process gives byte-identical shards.
    again = tmp_path / "again"
    reports = decode_manifest(
        [(r[0], r[1]) for r in rows], again, DecodeParams(clips_per_shard=3, workers=1), log=lambda _: None
    )
    assert [r.status for r in reports] == [s["status"] for s in status]
    for name in sorted(p.name for p in out.iterdir()):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_long_clip_streams_in_row_groups(tmp_path: Path) -> None:
    """Two minutes at 25 fps: 600 samples written as row groups of at most FRAME_ROW_GROUP."""
    path = tmp_path / "long.mp4"
    write_index_clip(path, [k / 25 for k in range(3000)], size=32, audio=tone(120.0, amp=0.1))
    out = tmp_path / "decoded"
    (report,) = decode_manifest([("long", str(path))], out, DecodeParams(workers=1), log=lambda _: None)
    assert report.n_frames == 600 and report.duration_s == pytest.approx(120.0, abs=1e-9)
    handle = pq.ParquetFile(out / "frames-00000.parquet")
    sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.num_row_groups)]
    assert sum(sizes) == 600 and max(sizes) <= FRAME_ROW_GROUP and len(sizes) >= 3
    (audio,) = iter_clip_audio(out)
    assert len(audio.samples) == 120 * SR


def shard_files(n: int) -> list[str]:
    """The file names of ``n`` decode shards, sorted."""
    return sorted(f"{kind}-{k:05d}.parquet" for kind in ("audio", "frames") for k in range(n))


class CrashingPath(str):
    """A clip path that kills the worker process decoding it, like a segfault in a native decoder."""

    def __str__(self) -> str:
        os._exit(11)


def test_a_worker_crash_costs_only_its_clip(tmp_path: Path) -> None:
    good = tmp_path / "good.mp4"
    write_index_clip(good, [k / 25 for k in range(25)], audio=tone(1.0))
    clips = [("g0", str(good)), ("boom", CrashingPath(str(good))), ("g1", str(good)), ("g2", str(good))]
    out = tmp_path / "decoded"
    lines = []
    reports = decode_manifest(clips, out, DecodeParams(workers=2, clips_per_shard=2), log=lines.append)
    assert [r.clip_id for r in reports] == ["g0", "boom", "g1", "g2"]
    assert [r.status for r in reports] == ["no_face", "error", "no_face", "no_face"]
    assert "died on this file twice" in reports[1].message and reports[0].n_frames == 5
    assert any("died on clip boom" in line for line in lines)
    assert [a.clip_id for a in iter_clip_audio(out)] == ["g0", "boom", "g1", "g2"]
    assert [len(v.times) for v in iter_clip_frames(out)] == [5, 0, 5, 5]
    # No progress markers, no temporary files of the crashed attempts.
    assert sorted(p.name for p in out.iterdir()) == shard_files(2)


def test_timeline_holds_every_frame_and_each_sample_source(tmp_path: Path) -> None:
    """Frame k of a per-frame label file is ``frame_pts[k - 1]``: every decoded frame's pts, in order,
    at the container's real timestamps; each 5 fps sample points at the frame on screen at its time."""
    pts = [0.0, 0.04, 0.08, 0.12, 0.2, 0.24, 0.4, 0.44, 0.6, 0.64, 0.68, 0.9, 0.94, 0.98]  # variable rate
    write_index_clip(tmp_path / "vfr.mp4", pts, declared_fps=30.0)
    report = decode_clip(tmp_path / "vfr.mp4", DecodeParams(fps=5.0)).report
    np.testing.assert_allclose(report.frame_pts, pts, atol=1e-9)
    samples = np.arange(report.n_frames) / 5.0
    expected = [max(k for k, p in enumerate(pts) if p <= t + 1e-9) for t in samples]
    assert report.sample_frame == expected and len(expected) == report.n_frames
