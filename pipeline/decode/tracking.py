"""Following the face between detections: the detector on every k-th new frame, a template match between.

MediaPipe's detector costs about as much CPU as decoding the video (``docs/scale.md``); on a
talking head the face moves a few pixels between samples 0.2 s apart. :class:`FaceTracker` runs the
detector on a clip's first frame and on every ``every``-th distinct frame after a detection; on the
frames between it looks for the last detected face (its grey patch, every f-th pixel so that about
``TEMPLATE_SIDE`` remain) within ``SEARCH_MARGIN`` box sides of its last place by normalised
cross-correlation, refined to a fraction of a pixel, and moves the box there (same size, same
score). It detects again, at once, when:

- the match scores below ``MIN_MATCH`` (the face turned, left the frame, was covered),
- the frame as a whole changed (``MIN_SCENE_NCC`` on a 32x32 thumbnail: a scene cut),
- the followed box leaves the frame or its half (``side``) or loses half its area to the border.

A frame without a face holds "no face" until the next detection only while the scene does not
change; a face that enters then is found at most ``every - 1`` frames late. ``every = 1`` is the
detector on every frame, exactly as before. ``benchmarks/bench_face_tracking.py`` measures the
boxes and the visual features against per-frame detection, and the CPU saved.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.decode.faces import Face, FaceDetector

TEMPLATE_SIDE = 40  # the face template is every f-th pixel of the box, f whole, about this many a side
SEARCH_MARGIN = 0.5  # the search window reaches this fraction of the box side past each edge
MIN_MATCH = 0.75  # TM_CCOEFF_NORMED below this: the face is not where it was, detect
MIN_SCENE_NCC = 0.8  # thumbnail correlation with the last detected frame below this: a cut, detect
THUMB_SIDE = 32


def _gray(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int, factor: int) -> np.ndarray:
    """The grey of every ``factor``-th pixel of ``rgb[y0:y1, x0:x1]``: template and search window
    are sampled alike, so a still face matches itself; sampling instead of averaging keeps the
    follow step at a few hundredths of a millisecond (the detector is about 2 ms)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1:factor, x0:x1:factor]), cv2.COLOR_RGB2GRAY)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """A THUMB_SIDE square grey thumbnail of the whole frame, from every few pixels (it only has to
    tell one scene from another)."""
    step = max(1, min(rgb.shape[:2]) // (2 * THUMB_SIDE))
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)


def _same_scene(a: np.ndarray, b: np.ndarray) -> bool:
    score = float(cv2.matchTemplate(a, b, cv2.TM_CCOEFF_NORMED)[0, 0])
    if not np.isfinite(score):  # a flat thumbnail (a black frame): the same scene if as bright
        return abs(float(a.mean()) - float(b.mean())) < 8.0
    return score >= MIN_SCENE_NCC


def _peak(scores: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """The maximum at (x, y) refined to a fraction of a pixel by a parabola through its neighbours."""

    def offset(minus: float, centre: float, plus: float) -> float:
        curve = minus - 2.0 * centre + plus
        return 0.0 if curve >= 0 else max(-0.5, min(0.5, 0.5 * (minus - plus) / curve))

    h, w = scores.shape
    dx = offset(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy


class FaceTracker:
    """The main face of each new frame of one clip, by detection or by following the last one.

    Call :meth:`reset` before each clip; :meth:`find` once per distinct frame, in order.
    """

    def __init__(self, detector: FaceDetector, *, every: int) -> None:
        self.detector = detector
        self.every = every
        self.reset()

    def reset(self) -> None:
        self._face: Face | None = None
        self._template: np.ndarray | None = None
        self._factor = 1
        self._thumb: np.ndarray | None = None
        self._since = 0  # frames since the last detection
        self.detections = 0  # detector calls in this clip (for the benchmark)

    def find(self, rgb: np.ndarray, *, side: str | None = None) -> Face | None:
        if self.every <= 1:
            self.detections += 1
            return self.detector.detect(rgb, side=side)
        thumb = _thumb(rgb)
        if self._thumb is not None and self._since < self.every - 1 and _same_scene(thumb, self._thumb):
            if self._face is None:
                self._since += 1
                return None
            followed = self._follow(rgb, side)
            if followed is not None:
                self._since += 1
                self._face = followed
                return followed
        return self._detect(rgb, thumb, side)

    def _detect(self, rgb: np.ndarray, thumb: np.ndarray, side: str | None) -> Face | None:
        self.detections += 1
        face = self.detector.detect(rgb, side=side)
        self._since, self._thumb, self._face, self._template = 0, thumb, face, None
        if face is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            self._factor = max(1, round(max(x1 - x0, y1 - y0) / TEMPLATE_SIDE))
            if min(x1 - x0, y1 - y0) >= 8 * self._factor:  # smaller: detect on every frame while it lasts
                self._template = _gray(rgb, x0, y0, x1, y1, self._factor)
        return face

    def _follow(self, rgb: np.ndarray, side: str | None) -> Face | None:
        """The last face moved to where its template matches best near its last box, or None."""
        if self._template is None:
            return None
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = self._face.box
        reach = SEARCH_MARGIN * max(x1 - x0, y1 - y0)
        # The window starts a whole number of blocks from the template's own corner, so a face that
        # did not move matches at a whole offset.
        f = self._factor
        bx0, by0 = int(round(x0)), int(round(y0))
        sx0 = bx0 - min(bx0, int(reach)) // f * f
        sy0 = by0 - min(by0, int(reach)) // f * f
        sx1, sy1 = int(min(width, x1 + reach)), int(min(height, y1 + reach))
        region = _gray(rgb, sx0, sy0, sx1, sy1, f)
        th, tw = self._template.shape
        if region.shape[0] < th or region.shape[1] < tw:
            return None
        scores = cv2.matchTemplate(region, self._template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < MIN_MATCH:
            return None
        px, py = _peak(scores, mx, my)
        left, top = sx0 + px * f + (x0 - bx0), sy0 + py * f + (y0 - by0)
        box = (left, top, left + (x1 - x0), top + (y1 - y0))
        clipped = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))
        area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1] or area < 0.5 * (x1 - x0) * (y1 - y0):
            return None
        if side is not None and (((clipped[0] + clipped[2]) / 2.0 < width / 2.0) != (side == "left")):
            return None
        return Face(box=clipped, score=self._face.score)
