"""The demo's video: a real face (``skimage.data.astronaut()``) warped by expression fields and head motion."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

# Landmarks of the astronaut image (512x512), measured once with mediapipe face_mesh
# (indices 61/291 mouth corners, 14 lower lip, 152 chin, 70/105/107 and 300/334/336 brows).
FACE_CENTER = (224.0, 122.0)
FACE_CROP = (112.0, 10.0, 336.0, 234.0)  # x0, y0, x1, y1 in source pixels: face about 40% wide
# The shuttle model and backdrop: neither BlazeFace model (short- or full-range) fires on it even at
# score 0.2 over 300 jittered frames; other face-free crops (flag, suit) drew false faces at 0.5-0.67.
BACKGROUND_CROP = (336.0, 0.0, 512.0, 176.0)
_ROI = (150, 50, 300, 225)  # x0, y0, x1, y1: support of every expression field (3 sigma margin)

# Expression fields: (centre, displacement at +1, sigma) per control point, source pixels. The
# smile field at -1 moves the corners down and inward: a frown.
_FIELDS: dict[str, list[tuple[tuple[float, float], tuple[float, float], float]]] = {
    "smile": [
        ((201.8, 139.2), (-5.0, -8.0), 10.0),
        ((245.0, 141.0), (5.0, -8.0), 10.0),
        ((203.0, 124.0), (0.0, -2.5), 12.0),
        ((246.0, 126.0), (0.0, -2.5), 12.0),
    ],
    "brow_raise": [
        ((188.1, 91.1), (0.0, -3.5), 8.0),
        ((198.8, 86.9), (0.0, -3.5), 8.0),
        ((215.9, 89.8), (0.0, -3.5), 8.0),
        ((235.8, 91.5), (0.0, -3.5), 8.0),
        ((253.0, 90.7), (0.0, -3.5), 8.0),
        ((262.8, 96.0), (0.0, -3.5), 8.0),
    ],
    "brow_knit": [
        ((215.9, 89.8), (3.0, 4.0), 8.0),
        ((235.8, 91.5), (-3.0, 4.0), 8.0),
        ((198.8, 86.9), (0.0, 2.5), 8.0),
        ((253.0, 90.7), (0.0, 2.5), 8.0),
    ],
    "jaw": [
        ((223.0, 150.1), (0.0, 5.0), 8.0),
        ((221.3, 177.4), (0.0, 4.0), 14.0),
    ],
}


@lru_cache(maxsize=1)
def _source_image() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut())


@lru_cache(maxsize=1)
def _field_images() -> dict[str, np.ndarray]:
    """Each expression field on the ROI grid: {name: (H_roi, W_roi, 2) float32 source pixels}."""
    x0, y0, x1, y1 = _ROI
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    fields = {}
    for name, points in _FIELDS.items():
        field = np.zeros(xs.shape + (2,), np.float32)
        for (cx, cy), (dx, dy), sigma in points:
            bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
            field[..., 0] += dx * bump
            field[..., 1] += dy * bump
        fields[name] = field
    return fields


def render_face(
    *,
    size: int,
    smile: float = 0.0,
    brow: float = 0.0,
    jaw: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    angle_deg: float = 0.0,
    scale: float = 1.0,
    gain: float = 1.0,
    crop: tuple[float, float, float, float] = FACE_CROP,
) -> np.ndarray:
    """One (size, size, 3) uint8 RGB frame of the warped face.

    smile, brow in [-1, 1] (expression intensity now), jaw in [0, 1] (mouth opening), shift in
    source pixels, rotation and scale about the face centre, brightness gain. ``crop`` picks the
    part of the source image shown (``BACKGROUND_CROP`` shows no face).
    """
    x0, y0, x1, y1 = crop
    step = (x1 - x0) / size
    grid = (np.arange(size, dtype=np.float32) + 0.5) * step - 0.5
    gx, gy = np.meshgrid(x0 + grid, y0 + (y1 - y0) / (x1 - x0) * grid)
    # Head motion: output pixel -> point of the (moved) face, an affine map about the face centre.
    cx, cy = FACE_CENTER
    theta = math.radians(angle_deg)
    c, s = math.cos(theta) / scale, math.sin(theta) / scale
    qx = (cx + c * (gx - cx) - s * (gy - cy) - shift[0]).astype(np.float32)
    qy = (cy + s * (gx - cx) + c * (gy - cy) - shift[1]).astype(np.float32)
    coeffs = {"smile": smile, "brow_raise": max(brow, 0.0), "brow_knit": max(-brow, 0.0), "jaw": jaw}
    fields = _field_images()
    total = sum(v * fields[k] for k, v in coeffs.items() if v != 0.0)
    if isinstance(total, np.ndarray):
        # The field moves with the face: sample it at the face point, then pull the source from
        # behind the displacement (backward mapping).
        rx, ry = _ROI[0], _ROI[1]
        disp = cv2.remap(total, qx - rx, qy - ry, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        qx, qy = qx - disp[..., 0], qy - disp[..., 1]
    frame = cv2.remap(_source_image(), qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if gain != 1.0:
        frame = cv2.convertScaleAbs(frame, alpha=gain)
    return frame


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
