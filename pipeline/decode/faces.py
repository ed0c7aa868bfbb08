"""Face detection and square face crops for the decode stage.

The detector is MediaPipe's BlazeFace (legacy ``mediapipe.solutions.face_detection``, the bundled
.tflite models of mediapipe 0.10.21). Two models exist: short-range (faces within about 2 m,
128x128 input) and full-range (192x192 input). Measured on ../shared/realdata at 5 fps, 640 px
frames: the full-range model misses a face that fills a 256x256 frame in half the frames
(styletalk clip: 49% vs 100%), while the short-range model finds every face in the talking-head
clips; on the mixed face/cartoon .mov the full-range model finds a few more (45% vs 41%). So we run
the short-range model first and the full-range model only on frames where it finds nothing: webcam
mimicry videos are close-range, and the fallback costs time only on faceless frames
(short 2.5-4.5 ms, full 5-12 ms per frame on one CPU core).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# MediaPipe's C++ side logs through glog; keep its INFO lines out of the stage's output.
os.environ.setdefault("GLOG_minloglevel", "2")


SIDES = ("left", "right")


@dataclass(frozen=True)
class FaceSource:
    """Where one clip's face crops come from.

    ``crop_dir``: a folder of organiser crops named by 1-based decoded-frame number (Aff-Wild2's
    ``cropped_aligned/<track>/%05d.jpg``); each sample then takes its source frame's crop, and a
    frame without one has no face, as in the organisers' annotation (the detector is not run: two
    people in one video would make it pick whichever face is larger). Without one, the detector
    runs; ``side`` ("left" | "right") keeps it to the faces whose centre lies in that half of the
    frame, for the ``_left``/``_right`` tracks that share one video.
    """

    crop_dir: str | None = None
    side: str | None = None

    def __post_init__(self) -> None:
        if self.side is not None and self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES} or None, not {self.side!r}")

    def describe(self) -> str:
        """The status table's ``face_source``."""
        if self.crop_dir is not None:
            return "organiser crops"
        return "detector" if self.side is None else f"detector, {self.side} half"


DETECTOR = FaceSource()  # the default: the pipeline's detector, any side


def read_organiser_crop(source: FaceSource, frame: int, *, size: int) -> np.ndarray | None:
    """The (size, size, 3) RGB organiser crop of 0-based decoded frame ``frame``, None when absent
    or unreadable (a missing crop is a frame without a face, never an error)."""
    image = cv2.imread(str(Path(source.crop_dir) / f"{frame + 1:05d}.jpg"), cv2.IMREAD_COLOR)
    if image is None:
        return None
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] == (size, size):
        return rgb
    # INTER_AREA when shrinking (no aliasing); bilinear when enlarging the organisers' 112 px crops.
    shrink = max(rgb.shape[:2]) > size
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Face:
    """One detected face: box (x0, y0, x1, y1) in pixels of the image, clipped to it; score in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float


class FaceDetector:
    """Finds the main face of an RGB image: the largest detection scoring at least ``min_score``.

    The largest box is the person in front of the camera when a second face (a poster, a screen)
    is also in view. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, *, min_score: float) -> None:
        from mediapipe.python.solutions import face_detection

        self.min_score = min_score
        # Order matters: short-range first, full-range only as a fallback (see the module docstring).
        self._models = [
            face_detection.FaceDetection(model_selection=selection, min_detection_confidence=min_score)
            for selection in (0, 1)
        ]

    def detect(self, rgb: np.ndarray, *, side: str | None = None) -> Face | None:
        """The main face of ``rgb`` ((H, W, 3) uint8, C-contiguous), or None when there is none.

        ``side`` "left" | "right": only faces whose box centre lies in that half of the image.
        """
        height, width = rgb.shape[:2]
        for model in self._models:
            detections = model.process(rgb).detections or []
            faces = []
            for detection in detections:
                score = float(detection.score[0])
                if score < self.min_score:
                    continue
                rel = detection.location_data.relative_bounding_box
                x0 = min(max(rel.xmin * width, 0.0), width)
                y0 = min(max(rel.ymin * height, 0.0), height)
                x1 = min(max((rel.xmin + rel.width) * width, 0.0), width)
                y1 = min(max((rel.ymin + rel.height) * height, 0.0), height)
                if side is not None and (((x0 + x1) / 2.0 < width / 2.0) != (side == "left")):
                    continue
                if x1 > x0 and y1 > y0:
                    faces.append(Face(box=(x0, y0, x1, y1), score=score))
            if faces:
                # Largest area first, the higher score breaking ties.
                return max(faces, key=lambda f: ((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), f.score))
        return None

    def close(self) -> None:
        for model in self._models:
            model.close()
        self._models = []

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def crop_face(rgb: np.ndarray, box: tuple[float, float, float, float], *, size: int, margin: float) -> np.ndarray:
    """A (size, size, 3) uint8 square crop of ``rgb`` centred on ``box``.

    The square's side is the box's longer side times (1 + 2 * margin): ``margin`` of the side on
    every edge. Parts of the square outside the image are black, so the face stays centred and at
    the same scale near the image border instead of sliding off-centre.
    """
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin))))
    left = int(round((x0 + x1) / 2.0 - side / 2.0))
    top = int(round((y0 + y1) / 2.0 - side / 2.0))
    if left >= 0 and top >= 0 and left + side <= width and top + side <= height:
        square = rgb[top : top + side, left : left + side]  # inside the image: a view, no padded copy
    else:
        square = np.zeros((side, side, 3), np.uint8)
        src_x0, src_y0 = max(left, 0), max(top, 0)
        src_x1, src_y1 = min(left + side, width), min(top + side, height)
        if src_x1 > src_x0 and src_y1 > src_y0:
            square[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = rgb[src_y0:src_y1, src_x0:src_x1]
    # INTER_AREA averages the source pixels under each output pixel: no aliasing when shrinking.
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
