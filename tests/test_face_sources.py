"""Where a clip's face crops come from: the organisers' crop folder (by decoded-frame number, a missing
crop is a frame without a face) or the detector, kept to one half of the frame for the _left/_right
tracks of a shared video; the status table says which. The crop's geometry inside and at the edge
of the frame. Also the manifest's media digests, which make decode rerun for a replaced video and
only then."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest

from fixtures.affwild2 import MISSING_CROPS, TRACKS, write_crops, write_video
from pipeline.config import DecodeParams
from pipeline.decode import ClipJob, clip_jobs, decode_clip, decode_shard
from pipeline.decode.clip import ClipDecoder
from pipeline.decode.faces import FaceSource, crop_face
from pipeline.decoded import decode_crop, iter_clip_frames
from pipeline.ingest.release import media_digests

TWO = {t.name: t for t in TRACKS}


@pytest.fixture(scope="module")
def shared_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two-person video (left face smiling, right face frowning) and its tracks' crop folders."""
    root = tmp_path_factory.mktemp("faces")
    left = TWO["2-25-256x128_left"]
    frames = write_video(root / left.video, left)
    for name in ("2-25-256x128_left", "2-25-256x128_right"):
        write_crops(root / "crops" / name, TWO[name], frames)
    return root / left.video, root / "crops"


def _decode(path: Path, faces: FaceSource) -> tuple[list, list[int], object]:
    params = DecodeParams()
    rows = []
    with ClipDecoder(params, threads=1) as decoder:
        report, _ = decoder.decode(path, "clip", rows.append, faces)
    crops = [None if c is None else decode_crop(c, params.crop_format, params.crop_size) for r in rows for c in r.crops]
    boxes = np.concatenate([r.face_box for r in rows])
    return crops, report.sample_frame, (report, boxes)


def _read(folder: Path, frame: int, size: int) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(folder / f"{frame + 1:05d}.jpg")), cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).astype(float)


@pytest.mark.parametrize(("own", "other"), [("2-25-256x128_left", "2-25-256x128_right"),
                                            ("2-25-256x128_right", "2-25-256x128_left")])  # fmt: skip
def test_each_track_reads_its_own_organiser_crops(shared_video, own: str, other: str) -> None:
    video, crops = shared_video
    got, sample_frame, (report, boxes) = _decode(
        video, FaceSource(crop_dir=str(crops / own), side=own.rpartition("_")[2])
    )
    assert report.face_source == "organiser crops" and report.n_face_frames == len(got) == 15  # 3 s at 5 fps
    assert np.isnan(boxes).all()  # the organisers do not publish where in the frame their crop was
    for crop, frame in zip(got, sample_frame, strict=True):
        mine, theirs = _read(crops / own, frame, crop.shape[0]), _read(crops / other, frame, crop.shape[0])
        diff = np.abs(crop - mine).mean()
        assert diff < 4 and diff < np.abs(crop - theirs).mean() / 3


def test_a_frame_without_an_organiser_crop_has_no_face(tmp_path: Path) -> None:
    track = TWO["1-30-128x128"]
    frames = write_video(tmp_path / track.video, track)
    write_crops(tmp_path / "crops", track, frames)  # frames 10-14 (1-based) have no crop
    got, sample_frame, (report, _) = _decode(tmp_path / track.video, FaceSource(crop_dir=str(tmp_path / "crops")))
    assert [c is None for c in got] == [f + 1 in MISSING_CROPS for f in sample_frame]
    assert any(f + 1 in MISSING_CROPS for f in sample_frame)
    assert report.n_face_frames == sum(c is not None for c in got) and report.status == "ok"


def test_the_detector_keeps_to_the_tracks_half_of_a_shared_video(shared_video) -> None:
    video, _ = shared_video
    centres = {}
    for side in ("left", "right"):
        _, _, (report, boxes) = _decode(video, FaceSource(side=side))
        assert report.face_source == f"detector, {side} half"
        found = boxes[~np.isnan(boxes[:, 0])]
        assert len(found) >= 0.8 * len(boxes)
        centres[side] = (found[:, 0] + found[:, 2]) / 2
    assert (centres["left"] < 128).all() and (centres["right"] > 128).all()
    with pytest.raises(ValueError, match="side"):
        FaceSource(side="middle")


def test_the_manifest_chooses_each_tracks_source_and_the_status_says_which(shared_video, tmp_path: Path) -> None:
    video, crops = shared_video
    manifest = pa.table({
        "clip_id": ["2-25-256x128_left", "2-25-256x128_right", "plain"],
        "path": [str(video)] * 3,
        "split": ["train", "valid", "train"],
        "side": ["left", "right", None],
        "crop_dir": [str(crops / "2-25-256x128_left"), None, None],
    })  # fmt: skip
    jobs = clip_jobs(manifest)
    assert jobs[1] == ClipJob("2-25-256x128_right", str(video), FaceSource(side="right"))
    assert clip_jobs(manifest.drop_columns(["side", "crop_dir"]))[0].faces == FaceSource()
    reports = decode_shard(jobs, tmp_path, 0, DecodeParams(), threads=1)
    assert [r.face_source for r in reports] == ["organiser crops", "detector, right half", "detector"]
    frames = {v.clip_id: v for v in iter_clip_frames(tmp_path, [j.clip_id for j in jobs])}
    assert not np.array_equal(frames["2-25-256x128_left"].crops[0], frames["plain"].crops[0])


def test_decode_clip_defaults_to_the_detector(shared_video) -> None:
    video, _ = shared_video
    assert decode_clip(video, DecodeParams(), threads=1).report.face_source == "detector"


def test_media_digests_follow_the_bytes_not_the_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"one video")
    b.write_bytes(b"one video")
    first = media_digests([str(a), str(b), str(a), str(tmp_path / "missing.mp4")])
    assert first[0] == first[1] == first[2] and first[3] is None and len(first[0]) == 32
    a.write_bytes(b"another video")  # replaced under the same path: decode must run again
    assert media_digests([str(a)])[0] != first[0]


def test_crop_is_the_square_around_the_box_black_beyond_the_frame() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (120, 200, 3), np.uint8)
    # Inside: the square (box side 40 x 1.5 = 60, centred on the box) resized, nothing else.
    inside = crop_face(rgb, (80.0, 30.0, 120.0, 70.0), size=32, margin=0.25)
    expected = cv2.resize(np.ascontiguousarray(rgb[20:80, 70:130]), (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(inside, expected)
    # At the left and top edges: the same square, its part outside the frame black, the face centred.
    edge = crop_face(rgb, (0.0, 0.0, 40.0, 40.0), size=60, margin=0.25)
    square = np.zeros((60, 60, 3), np.uint8)
    square[10:, 10:] = rgb[:50, :50]
    np.testing.assert_array_equal(edge, square)  # 60 -> 60: the resize keeps every pixel
    assert not edge[:10].any() and not edge[:, :10].any()
