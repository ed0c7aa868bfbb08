"""The detector on every k-th frame, the face followed in between (``decode.detect_every``): on a
generated video of the demo face moving, cut away to a faceless background and back, then sliding
out of the frame, the followed boxes stay on the per-frame detector's, and no box is left on a
frame without a face (the cut and the exit are detected again)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DecodeParams
from pipeline.decode.clip import ClipDecoder
from pipeline.demo.face import BACKGROUND_CROP, render_face
from pipeline.demo.media import mux_clip

SIZE = 256
MOVING, CUT, BACK, EXIT = 25, 8, 10, 8  # frames of each part, one sample each at 5 fps


def frames() -> tuple[list[np.ndarray], np.ndarray]:
    """The frames and whether each shows a whole face (the exit's last frames show none)."""
    out, face = [], []
    for i in range(MOVING):  # a talking head: drifts a few pixels per frame and nods
        shift = (18 * math.sin(i / 4), 8 * math.cos(i / 3))
        out.append(render_face(size=SIZE, shift=shift, angle_deg=4 * math.sin(i / 5), jaw=0.4 * (i % 2)))
        face.append(True)
    for _ in range(CUT):
        out.append(render_face(size=SIZE, crop=BACKGROUND_CROP))
        face.append(False)
    for i in range(BACK):  # back, somewhere else and smaller
        out.append(render_face(size=SIZE, shift=(-30 + 2 * i, 20), scale=0.8))
        face.append(True)
    for i in range(EXIT):  # slides out to the right, 40 source pixels a frame (further, the
        # demo image's mirrored border brings a face back)
        out.append(render_face(size=SIZE, shift=(-10 + 40 * (i + 1), 20), scale=0.8))
        face.append(40 * (i + 1) < 120)
    return out, np.array(face)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    images, face = frames()
    path = tmp_path_factory.mktemp("tracking") / "moving.mp4"
    mux_clip(path, images, [k / 5 for k in range(len(images))], crf=18)
    return path, face


def boxes(path: Path, every: int) -> tuple[np.ndarray, int]:
    params = DecodeParams(detect_every=every)
    rows = []
    with ClipDecoder(params, threads=1) as decoder:
        decoder.decode(path, "clip", rows.append)
        calls = decoder._tracker.detections
    return np.concatenate([r.face_box for r in rows]), calls


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return ix * iy / (area(a) + area(b) - ix * iy)


def test_followed_boxes_stay_on_the_detector_and_leave_with_the_face(video) -> None:
    path, face = video
    every, every_calls = boxes(path, 1)
    tracked, calls = boxes(path, 5)
    assert len(every) == len(tracked) == len(face) and every_calls == len(face)
    found = ~np.isnan(every[:, 0])
    assert found[face].all()
    assert not found[MOVING : MOVING + CUT].any() and not found[-4:].any()  # the cut and the last exit frames
    has = ~np.isnan(tracked[:, 0])
    # No stale box: wherever the per-frame detector finds no face, neither does the tracker.
    assert not (has & ~found).any()
    overlap = iou(every[found & has], tracked[found & has])
    assert (found & ~has).sum() <= 1  # at most one frame late finding the face again
    assert overlap.mean() >= 0.9 and overlap.min() >= 0.75
    # Far fewer detections than frames, but more than one per k frames: the cut, the return and
    # the exit are detected again at once.
    assert len(face) / 5 < calls < len(face) / 2


def test_every_frame_is_the_detector_alone(video) -> None:
    path, _ = video
    with ClipDecoder(DecodeParams(detect_every=1), threads=1) as decoder:
        rows = []
        decoder.decode(path, "clip", rows.append)
        assert decoder._tracker.detections == sum(len(r.frame_index) for r in rows)
