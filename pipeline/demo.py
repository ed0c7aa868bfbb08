"""The built-in synthetic dataset (stage ``make_demo``), and test clips that encode their frame index.

Generative model
----------------
Each clip has five independent latent factors, each observable through one modality only:

==========  ========  =======================  =====================================================
latent      modality  distribution             how it shows
==========  ========  =======================  =====================================================
smile       visual    uniform [-1, 1]          mouth corners lift and widen (+) or drop and narrow (-)
brow        visual    uniform [-1, 1]          brows raise (+) or lower and knit (-)
arousal     audio     uniform [-1, 1]          espeak-ng speed 120..210 wpm and amplitude 50..170
pitch       audio     uniform [-1, 1]          espeak-ng pitch 20..80
wording     text      uniform on 7 levels      the sentence: -3 deep sympathy .. 0 neutral .. +3 awe
==========  ========  =======================  =====================================================

The video is a real face (``skimage.data.astronaut()``, NASA, public domain) warped over time by
smooth displacement fields (``cv2.remap``): the smile and brow latents set the peak of an expression
that rises from neutral at a random onset; the jaw follows the speech envelope; the head drifts
(translation, rotation, scale). The audio is espeak-ng (``en-us``) saying a sentence drawn from
the pool of the clip's wording level, with faint background noise.

Labels: emotion e has logit ``sum_k W[e][k] * latent_k`` (``EMOTION_WEIGHTS``; each emotion reads
latents of one or two modalities), mean ``mu = sigmoid(logit)`` and label
``y = clip(mu + N(0, label_noise^2), 0, 1)``. The noise ceiling (best achievable Pearson) of an
emotion is ``corr(E[y | latents], y)``; restricted to the latents of a modality subset it is
``corr(E[y | those latents], y)``. :func:`noise_ceiling` estimates both on 200,000 Monte Carlo
draws of the same model, with the conditional expectations integrated numerically (closed form
for the clipped Gaussian, Gauss-Legendre quadrature over the unobserved latents; error < 1e-5).
With the default ``label_noise = 0.15`` (seed 0) the mean Pearson ceilings are: fused 0.892;
visual 0.397, audio 0.347, text 0.361; visual+audio 0.653, visual+text 0.636, audio+text 0.708.

How readable each latent is from the clips (``benchmarks/bench_demo.py --check``, 40 clips):
faster-whisper base transcribes every sentence exactly (WER 0.0) and a leave-one-out ridge on the
all-MiniLM-L6-v2 embeddings of the transcripts recovers the wording level (Pearson 0.96); the
face-mesh mouth-corner lift correlates 0.97 with smile and the brow-to-eye distance 0.95 with brow;
the FER2013 mini-Xception "happy" probability moves only weakly (Pearson 0.49, range 0.93-1.00),
because the source face smiles with visible teeth at every smile level.

Layout written by :func:`generate_demo` (the contract with ``pipeline.manifest.read_demo``)::

    clips/<clip_id>.mp4   (the variable-frame-rate fault clip is .mkv)
    labels.csv            clip_id,split,<six emotions>   (labels always present)
    faults.json           {clip_id: {fault, status, path, modalities: {visual, audio, text}}}
    latents.parquet       per clip: split, fault, latents, sentence, espeak settings, timing,
                          and the noise-free expected labels ``expected_<emotion>``
    ceiling.json          noise ceiling: fused, per modality, per modality pair, and on the clips

Fault clips (``demo.faults``) are extra clips with labels, spread over the splits; ``faults.json``
gives the decode status each should get and which modalities it really carries (a decoder cannot
hear a sentence in 0.24 s, so the too-short clip has audio but no text).
Everything is a pure function of ``demo.seed`` and the other ``demo.*`` params: two runs give
byte-identical files (single-threaded encoders, bit-exact muxing, no timestamps in metadata).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import multiprocessing
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import av
import cv2
import numpy as np
import pyarrow as pa
from scipy.io import wavfile
from scipy.signal import resample_poly
from scipy.special import expit, ndtr

from pipeline.atomic import atomic_path, write_json, write_parquet, write_text
from pipeline.config import DemoParams
from pipeline.emotions import EMOTIONS

# ------------------------------------------------------------------------------ writing clips
# Timestamps of every clip written here are whole milliseconds, as in Hume-Vidmimic2's VFR files.
TIME_BASE = Fraction(1, 1000)
INDEX_GRID = 4  # index clips show a 4x4 grid of black/white cells: 16 bits, frame k < 65536


def _container_format(path: Path) -> str:
    formats = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
    if path.suffix.lower() not in formats:
        raise ValueError(f"{path}: unsupported container suffix; use one of {sorted(formats)}")
    return formats[path.suffix.lower()]


def _frame_durations_ms(pts_ms: Sequence[int]) -> list[int]:
    """Each frame lasts until the next one; the last lasts the median gap (40 ms for one frame)."""
    gaps = np.diff(np.asarray(pts_ms, np.int64))
    last = int(np.median(gaps)) if gaps.size else 40
    return [int(g) for g in gaps] + [max(last, 1)]


def mux_clip(
    path: str | Path,
    frames: Iterable[np.ndarray],
    pts_s: Sequence[float],
    *,
    declared_fps: Optional[float] = None,
    audio: Optional[np.ndarray] = None,
    sample_rate: int = 16000,
    crf: int = 23,
    preset: str = "veryfast",
    bframes: bool = True,
) -> None:
    """Encode RGB frames (H.264, yuv420p) and optional mono audio (AAC) into ``path``, atomically.

    frames: iterable of (H, W, 3) uint8 RGB, one per entry of ``pts_s`` (seconds, strictly
    increasing, stored as whole milliseconds in a 1/1000 time base). audio: (N,) float32 in
    [-1, 1] at ``sample_rate``; None writes no audio stream at all. ``declared_fps`` is the rate the
    stream declares (in Matroska it becomes the track's default duration, which ffprobe and PyAV
    report as both ``r_frame_rate`` and ``avg_frame_rate``; MP4 stores no rate, ffprobe guesses it
    from the timestamps); None declares the mean rate of ``pts_s``. The container is chosen by the
    suffix (.mp4, .mkv, .mov). Encoders run single-threaded with bit-exact muxing, so the same
    inputs give byte-identical files.
    """
    path = Path(path)
    pts_ms = [round(p * 1000) for p in pts_s]
    if not pts_ms or pts_ms[0] < 0 or any(b <= a for a, b in zip(pts_ms, pts_ms[1:])):
        raise ValueError("pts_s must be non-negative and strictly increasing at millisecond resolution")
    durations = dict(zip(pts_ms, _frame_durations_ms(pts_ms)))
    if declared_fps is None:
        span = pts_ms[-1] + durations[pts_ms[-1]] - pts_ms[0]
        declared_fps = 1000.0 * len(pts_ms) / span
    rate = Fraction(declared_fps).limit_denominator(1001)
    fmt = _container_format(path)
    options = {"fflags": "+bitexact"}
    if fmt in ("mp4", "mov"):
        options["video_track_timescale"] = "1000"  # keep the millisecond pts exact in the file
    frame_iter = iter(frames)
    first = next(frame_iter)
    with atomic_path(path, path.suffix) as tmp:
        with av.open(str(tmp), "w", format=fmt, options=options) as container:
            video = container.add_stream("libx264", rate=rate)
            video.height, video.width = first.shape[:2]
            video.pix_fmt = "yuv420p"
            video.time_base = TIME_BASE
            video.codec_context.time_base = TIME_BASE
            video.codec_context.thread_count = 1
            video.options = {"crf": str(crf), "preset": preset, "threads": "1", "bf": "3" if bframes else "0"}
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
                sound.codec_context.thread_count = 1
            written = 0
            for pts, image in zip(pts_ms, itertools.chain([first], frame_iter)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = pts, TIME_BASE
                _mux_video(container, video.encode(frame), durations)
                written += 1
            if written != len(pts_ms):
                raise ValueError(f"got {written} frames for {len(pts_ms)} timestamps")
            _mux_video(container, video.encode(None), durations)
            if sound is not None:
                _mux_audio(container, sound, np.asarray(audio, np.float32), sample_rate)


def _mux_video(container: Any, packets: Iterable[Any], durations: dict[int, int]) -> None:
    for packet in packets:
        # Explicit durations fix the clip's end (last pts + last duration) whatever rate is declared.
        packet.duration = durations[packet.pts]
        container.mux(packet)


def _mux_audio(container: Any, stream: Any, samples: np.ndarray, sample_rate: int) -> None:
    chunk = 1024  # AAC frame size
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts, frame.time_base = start, Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def index_frame(index: int, *, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 RGB frame showing ``index`` as 16 black/white cells, MSB top-left."""
    if not 0 <= index < 2 ** (INDEX_GRID * INDEX_GRID):
        raise ValueError(f"frame index {index} does not fit in {INDEX_GRID * INDEX_GRID} bits")
    bits = (index >> np.arange(INDEX_GRID * INDEX_GRID - 1, -1, -1)) & 1
    cells = bits.reshape(INDEX_GRID, INDEX_GRID).astype(np.uint8) * 255
    edges = np.diff(np.linspace(0, size, INDEX_GRID + 1).round().astype(int))
    grid = np.repeat(np.repeat(cells, edges, axis=0), edges, axis=1)
    return np.repeat(grid[:, :, None], 3, axis=2)


def read_index(frame_rgb: np.ndarray) -> int:
    """Inverse of :func:`index_frame` for a decoded (H, W, 3) uint8 frame, any size or scaling.

    Reads the mean of the central half of each cell, so compression noise and resizing at the cell
    borders do not flip bits.
    """
    grey = np.asarray(frame_rgb, np.float32).mean(axis=2)
    height, width = grey.shape
    value = 0
    for row in range(INDEX_GRID):
        for col in range(INDEX_GRID):
            y0, y1 = height * row / INDEX_GRID, height * (row + 1) / INDEX_GRID
            x0, x1 = width * col / INDEX_GRID, width * (col + 1) / INDEX_GRID
            qy, qx = (y1 - y0) / 4, (x1 - x0) / 4
            cell = grey[int(y0 + qy) : math.ceil(y1 - qy), int(x0 + qx) : math.ceil(x1 - qx)]
            value = (value << 1) | int(cell.mean() > 127.5)
    return value


def write_index_clip(
    path: str | Path,
    pts_s: Sequence[float],
    *,
    size: int = 64,
    declared_fps: Optional[float] = None,
    audio: Optional[np.ndarray] = None,
    sample_rate: int = 16000,
) -> None:
    """Write a clip whose frame k (shown from ``pts_s[k]``) encodes k; see :func:`read_index`.

    Constant or variable frame rate: pass any strictly increasing pts (seconds, kept to the
    millisecond). The video lasts ``pts_s[-1]`` plus the median frame gap. ``declared_fps``: the
    rate the container claims (honoured by .mkv; an .mp4 with irregular pts reports 1000/1 as
    ``r_frame_rate`` from its 1/1000 time base, like Hume-Vidmimic2's VFR files). ``audio``: (N,)
    float32 mono at ``sample_rate`` or None for no audio stream. Encoded lossless (x264 crf 0, no
    B-frames) so every decoded frame reads back exactly.
    """
    frames = (index_frame(k, size=size) for k in range(len(pts_s)))
    mux_clip(path, frames, pts_s, declared_fps=declared_fps, audio=audio, sample_rate=sample_rate, crf=0, bframes=False)


# --------------------------------------------------------------------------- generative model
@dataclasses.dataclass(frozen=True)
class Latent:
    modality: str
    levels: Optional[tuple[float, ...]] = None  # None: continuous uniform on [-1, 1]


WORDING_LEVELS: tuple[float, ...] = tuple(k / 3 for k in range(-3, 4))
LATENTS: dict[str, Latent] = {
    "smile": Latent("visual"),
    "brow": Latent("visual"),
    "arousal": Latent("audio"),
    "pitch": Latent("audio"),
    "wording": Latent("text", WORDING_LEVELS),
}

# Logit weights: each emotion reads latents of one or two modalities, so no single modality (nor,
# for most emotions, any pair) reaches the fused ceiling.
EMOTION_WEIGHTS: dict[str, dict[str, float]] = {
    "Admiration": {"wording": 2.4, "brow": 1.0},
    "Amusement": {"smile": 2.2, "pitch": 1.2},
    "Determination": {"arousal": 2.0, "pitch": -1.2, "brow": -1.0},
    "Empathic Pain": {"wording": -2.4, "smile": -1.0},
    "Excitement": {"arousal": 2.0, "pitch": 1.4},
    "Joy": {"smile": 2.2, "wording": 1.2},
}

# Sentence pools by wording level (-3..3): short, plain sentences whose sentence embeddings order
# by intensity. Each was kept only if faster-whisper base (beam 5, VAD) transcribed it exactly
# from espeak-ng at the four corners and the centre of the prosody range (33 of 35 at all five;
# "That was quite nice." and "I will check the weather later." at four); candidates with
# numbers, "That news", "hurting", "box" and the like failed and were replaced.
SENTENCES: dict[int, tuple[str, ...]] = {
    -3: (
        "I am so sorry for your painful loss.",
        "My heart breaks for you and your family.",
        "I am deeply sorry for all your suffering.",
        "I can't imagine how painful this is for you.",
        "I am heartbroken by your terrible loss.",
    ),
    -2: (
        "It hurts to see you so upset.",
        "This must be really hard for you.",
        "I feel so sad for you right now.",
        "I feel sorry that you lost your job.",
        "It is hard to watch you struggle.",
    ),
    -1: (
        "I hope things get better soon.",
        "That sounds like a tough day.",
        "Oh well, better luck next time.",
        "Sorry, that must be annoying.",
        "Too bad the shop was closed.",
    ),
    0: (
        "The meeting starts tomorrow morning.",
        "We need to buy some bread and milk.",
        "The library closes in the evening.",
        "My car is parked outside the house.",
        "I will check the weather later.",
    ),
    1: (
        "I like what you did there.",
        "That looks rather good to me.",
        "I think it was pretty good.",
        "Nice try, it looks good.",
        "That was quite nice.",
    ),
    2: (
        "You did a great job today.",
        "I really admire how you handled that.",
        "Your talent is clear to everyone.",
        "I am impressed by your hard work.",
        "Your idea was really smart.",
    ),
    3: (
        "What a brilliant and inspiring performance.",
        "That is the most beautiful work I have ever seen.",
        "You are my hero, I admire you so much.",
        "Wow, you are truly extraordinary.",
        "Your work is a true masterpiece.",
    ),
}

MODALITY_NAMES: tuple[str, ...] = ("visual", "audio", "text")
_QUADRATURE = np.polynomial.legendre.leggauss(16)  # nodes on [-1, 1], weights summing to 2


def draw_latents(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n independent draws of every latent: {name: (n,) float64}."""
    out = {}
    for name, latent in LATENTS.items():
        if latent.levels is None:
            out[name] = rng.uniform(-1.0, 1.0, n)
        else:
            out[name] = np.asarray(latent.levels)[rng.integers(0, len(latent.levels), n)]
    return out


def label_logits(latents: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 6) logits of the label means, columns in EMOTIONS order."""
    return np.stack([sum(w * latents[k] for k, w in EMOTION_WEIGHTS[e].items()) for e in EMOTIONS], axis=1)


def expected_clipped(mu: np.ndarray, noise: float) -> np.ndarray:
    """E[clip(mu + N(0, noise^2), 0, 1)], elementwise (closed form for a clipped Gaussian)."""
    if noise == 0:
        return np.clip(mu, 0.0, 1.0)
    a, b = -mu / noise, (1.0 - mu) / noise
    return mu * (ndtr(b) - ndtr(a)) + noise * (_normal_pdf(a) - _normal_pdf(b)) + (1.0 - ndtr(b))


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def draw_labels(latents: dict[str, np.ndarray], noise: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 6) labels in [0, 1]: sigmoid of the logits plus Gaussian noise, clipped."""
    mu = expit(label_logits(latents))
    return np.clip(mu + noise * rng.standard_normal(mu.shape), 0.0, 1.0)


def conditional_expected_labels(latents: dict[str, np.ndarray], modalities: Iterable[str], noise: float) -> np.ndarray:
    """(n, 6) E[y | the latents of ``modalities``]: the best prediction from those modalities.

    For each emotion, E[y | seen] depends only on the seen part of the logit, a scalar: it is
    averaged over the unseen parent latents by quadrature (16 Gauss-Legendre nodes per continuous
    latent, exact sum over text levels) on a grid of 4097 values of that scalar, then linearly
    interpolated (step < 0.003 in logit; interpolation error below 1e-5). An emotion with no seen
    parent gets its constant mean (Pearson 0 against anything).
    """
    seen = {k for k, latent in LATENTS.items() if latent.modality in set(modalities)}
    n = len(next(iter(latents.values())))
    out = np.empty((n, len(EMOTIONS)))
    for column, emotion in enumerate(EMOTIONS):
        weights = EMOTION_WEIGHTS[emotion]
        # Quadrature over the unseen latents: each node's logit shift and weight, (M,) each.
        shifts, node_weights = np.zeros(1), np.ones(1)
        for k in (k for k in weights if k not in seen):
            levels = LATENTS[k].levels
            if levels is None:
                values, w = _QUADRATURE[0], _QUADRATURE[1] / 2
            else:
                values, w = np.asarray(levels), np.full(len(levels), 1 / len(levels))
            shifts = (shifts[:, None] + weights[k] * values[None, :]).ravel()
            node_weights = (node_weights[:, None] * w[None, :]).ravel()
        known = sum((w * latents[k] for k, w in weights.items() if k in seen), np.zeros(n))
        reach = sum(abs(w) for k, w in weights.items() if k in seen)  # |known| <= reach
        grid = np.linspace(-reach, reach, 4097 if reach > 0 else 1)
        table = expected_clipped(expit(grid[:, None] + shifts[None, :]), noise) @ node_weights
        out[:, column] = np.interp(known, grid, table)
    return out


def _pearson_columns(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    out = []
    for p, t in zip(pred.T, truth.T):
        # A constant prediction carries no information: score it 0 rather than NaN.
        out.append(0.0 if np.std(p) < 1e-12 or np.std(t) < 1e-12 else float(np.corrcoef(p, t)[0, 1]))
    return out


def _score(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    per = _pearson_columns(pred, truth)
    return {"mean": round(float(np.mean(per)), 4), "per_emotion": {e: round(v, 4) for e, v in zip(EMOTIONS, per)}}


def modality_subsets() -> list[tuple[str, ...]]:
    """Every non-empty subset of the three modalities, singles first, in MODALITY_NAMES order."""
    return [s for r in (1, 2, 3) for s in itertools.combinations(MODALITY_NAMES, r)]


def noise_ceiling(*, label_noise: float, seed: int, n_draws: int = 200_000) -> dict[str, Any]:
    """Best achievable Pearson (per emotion and mean) of the fused model and of each modality subset.

    Estimated on ``n_draws`` Monte Carlo draws of (latents, labels) from the generative model:
    the prediction for subset S is E[y | latents of S], the best any model seeing only S can do.
    Returns {"fused": score, "modalities": {"visual": score, ..., "visual+audio": score, ...},
    "n_draws", "label_noise"} where score = {"mean", "per_emotion"}.
    """
    rng = np.random.default_rng([seed, 0xCE1])
    latents = draw_latents(rng, n_draws)
    labels = draw_labels(latents, label_noise, rng)
    subsets = {"+".join(s): _score(conditional_expected_labels(latents, s, label_noise), labels) for s in modality_subsets()}
    return {
        "fused": subsets["+".join(MODALITY_NAMES)],
        "modalities": subsets,
        "n_draws": n_draws,
        "label_noise": label_noise,
    }


# ------------------------------------------------------------------------------- face rendering
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


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# -------------------------------------------------------------------------------------- speech
SPEECH_RATE = 16000
VOICE = "en-us"


def espeak_settings(*, arousal: float, pitch: float) -> dict[str, int]:
    """espeak-ng prosody for the audio latents: pitch -p, speed -s (wpm), amplitude -a."""
    return {
        "pitch": int(round(50 + 30 * pitch)),
        "speed": int(round(165 + 45 * arousal)),
        "amplitude": int(round(110 + 60 * arousal)),
    }


def synthesize_speech(text: str, *, pitch: int, speed: int, amplitude: int) -> np.ndarray:
    """espeak-ng saying ``text``: (N,) float32 mono at SPEECH_RATE (16 kHz)."""
    with tempfile.TemporaryDirectory(prefix="emi-espeak-") as folder:
        wav = Path(folder) / "speech.wav"
        command = ["espeak-ng", "-v", VOICE, "-p", str(pitch), "-s", str(speed), "-a", str(amplitude), "-w", str(wav), text]
        subprocess.run(command, check=True, capture_output=True)
        rate, samples = wavfile.read(wav)
    samples = samples.astype(np.float32) / 32768.0
    if rate != SPEECH_RATE:
        divisor = math.gcd(rate, SPEECH_RATE)
        samples = resample_poly(samples, SPEECH_RATE // divisor, rate // divisor).astype(np.float32)
    return samples


# --------------------------------------------------------------------------------------- clips
@dataclasses.dataclass(frozen=True, kw_only=True)
class Fault:
    status: str  # the decode status the clip should get
    visual: bool  # which modalities the file really carries
    audio: bool
    text: bool


FAULTS: dict[str, Fault] = {
    "no_audio_stream": Fault(status="no_audio_stream", visual=True, audio=False, text=False),
    "silent_audio": Fault(status="silent_audio", visual=True, audio=False, text=False),
    "no_face": Fault(status="no_face", visual=False, audio=True, text=True),
    "too_short": Fault(status="too_short", visual=True, audio=True, text=False),
    "corrupt": Fault(status="corrupt", visual=False, audio=False, text=False),
    "variable_frame_rate": Fault(status="ok", visual=True, audio=True, text=True),
}
SHORT_SECONDS = 0.24
BOGUS_FPS = 1000.0  # what the variable-frame-rate clip's container declares
NOISE_DBFS = -55.0  # background noise under the speech


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClipSpec:
    """Everything that determines one clip; ``seed`` drives the nuisance (timing, motion, gain)."""

    clip_id: str
    split: str
    seed: int
    smile: float
    brow: float
    arousal: float
    pitch: float
    wording: float
    sentence: str
    duration_s: float  # drawn length; stretched if the sentence would not fit
    fps: float = 25.0
    size: int = 256
    fault: Optional[str] = None

    @property
    def filename(self) -> str:
        return f"{self.clip_id}{'.mkv' if self.fault == 'variable_frame_rate' else '.mp4'}"


def _frame_times(spec: ClipSpec, duration: float, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(round(duration * spec.fps)))
    if spec.fault != "variable_frame_rate":
        return np.arange(n) / spec.fps
    # Irregular gaps between 0.5 and 1.5 frame periods, whole milliseconds.
    gaps = np.round(rng.uniform(0.5, 1.5, n - 1) * 1000 / spec.fps)
    return np.concatenate([[0.0], np.cumsum(gaps)]) / 1000


def write_clip(path: str | Path, spec: ClipSpec) -> dict[str, Any]:
    """Render and encode one clip to ``path`` (name it ``spec.filename``: the variable-frame-rate
    fault needs .mkv to declare its bogus rate). A deterministic function of ``spec``.

    Returns {clip_id, duration_s, n_frames, speech_start_s, speech_end_s, espeak_pitch,
    espeak_speed, espeak_amplitude}. The clip lasts ``spec.duration_s``, stretched to end at least
    0.3 s after the sentence (``SHORT_SECONDS`` for the too-short fault).
    """
    rng = np.random.default_rng(spec.seed)
    prosody = espeak_settings(arousal=spec.arousal, pitch=spec.pitch)
    speech = synthesize_speech(spec.sentence, **prosody)
    onset = 0.0 if spec.fault == "too_short" else float(rng.uniform(0.3, 0.9))
    duration = SHORT_SECONDS if spec.fault == "too_short" else max(spec.duration_s, onset + len(speech) / SPEECH_RATE + 0.3)
    times = _frame_times(spec, duration, rng)
    # The video ends when its last frame does (mux_clip gives it the median frame gap).
    duration = (round(times[-1] * 1000) + _frame_durations_ms([round(t * 1000) for t in times])[-1]) / 1000

    n_samples = int(round(duration * SPEECH_RATE))
    audio = np.zeros(n_samples, np.float32)
    start = int(round(onset * SPEECH_RATE))
    piece = speech[: max(0, n_samples - start)]
    audio[start : start + len(piece)] = piece
    # Mouth opening follows the speech envelope (RMS over 60 ms, normalised to the loudest frame).
    envelope = np.array([_rms(audio, t, 0.06) for t in times])
    jaw = envelope / max(envelope.max(), 1e-9)
    audio = np.clip(audio + (10 ** (NOISE_DBFS / 20) * rng.standard_normal(n_samples)).astype(np.float32), -1.0, 1.0)
    if spec.fault == "silent_audio":
        audio = np.zeros_like(audio)  # a muted track: the face on screen still talks

    smile_env = _expression_envelope(times, rng)
    brow_env = _expression_envelope(times, rng)
    motion = _head_motion(times, rng)
    gain = float(rng.uniform(0.85, 1.15))
    crop = BACKGROUND_CROP if spec.fault == "no_face" else FACE_CROP
    frames = (
        render_face(
            size=spec.size, smile=spec.smile * smile_env[k], brow=spec.brow * brow_env[k], jaw=float(jaw[k]),
            shift=(motion[k, 0], motion[k, 1]), angle_deg=motion[k, 2], scale=motion[k, 3], gain=gain, crop=crop,
        )
        for k in range(len(times))
    )
    path = Path(path)
    declared = BOGUS_FPS if spec.fault == "variable_frame_rate" else spec.fps
    mux_clip(
        path, frames, times, declared_fps=declared,
        audio=None if spec.fault == "no_audio_stream" else audio, sample_rate=SPEECH_RATE,
    )
    if spec.fault == "corrupt":
        # The first third of a valid MP4: the index (moov) is written last, so nothing is decodable.
        data = path.read_bytes()
        with atomic_path(path, path.suffix) as tmp:
            tmp.write_bytes(data[: len(data) // 3])
    speech_end = min(onset + len(speech) / SPEECH_RATE, duration)
    return {
        "clip_id": spec.clip_id,
        "duration_s": round(duration, 6),
        "n_frames": len(times),
        "speech_start_s": round(onset, 6),
        "speech_end_s": round(speech_end, 6),
        **{f"espeak_{k}": v for k, v in prosody.items()},
    }


def _rms(audio: np.ndarray, t: float, window: float) -> float:
    lo = max(0, int((t - window / 2) * SPEECH_RATE))
    hi = max(lo + 1, int((t + window / 2) * SPEECH_RATE))
    chunk = audio[lo:hi]
    return float(np.sqrt(np.mean(chunk * chunk))) if chunk.size else 0.0


def _expression_envelope(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T,) in [0, 1]: neutral, a smooth rise at a random onset, then a held peak with slight sway."""
    onset, rise = rng.uniform(0.2, 1.2), rng.uniform(0.3, 0.9)
    sway_freq, sway_phase = rng.uniform(0.2, 0.6), rng.uniform(0, 2 * math.pi)
    hold = 0.9 + 0.1 * np.sin(2 * math.pi * sway_freq * times + sway_phase)
    return _smoothstep((times - onset) / rise) * hold


def _head_motion(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, 4): shift x, shift y (source px), angle (deg), scale; two slow sinusoids each."""
    out = np.empty((len(times), 4))
    for column, amplitude in enumerate((3.0, 2.0, 2.0, 0.02)):
        freqs, phases = rng.uniform(0.1, 0.5, 2), rng.uniform(0, 2 * math.pi, 2)
        wave = sum(np.sin(2 * math.pi * f * times + p) for f, p in zip(freqs, phases)) / 2
        out[:, column] = amplitude * wave
    out[:, 3] += 1.0
    return out


# ---------------------------------------------------------------------------------- the dataset
SPLITS: tuple[str, ...] = ("train", "valid", "test")


def plan_clips(params: DemoParams) -> tuple[list[ClipSpec], np.ndarray]:
    """The clip specs (normal clips by split, then the fault clips) and their (n, 6) labels."""
    counts = {"train": params.n_train, "valid": params.n_valid, "test": params.n_test}
    splits = [split for split in SPLITS for _ in range(counts[split])]
    faults: list[Optional[str]] = [None] * len(splits)
    if params.faults:
        for index, fault in enumerate(FAULTS):
            splits.append(SPLITS[index % len(SPLITS)])
            faults.append(fault)
    n = len(splits)
    latents = draw_latents(np.random.default_rng([params.seed, 1]), n)
    labels = draw_labels(latents, params.label_noise, np.random.default_rng([params.seed, 2]))
    timing = np.random.default_rng([params.seed, 3])
    durations = timing.uniform(params.min_seconds, params.max_seconds, n)
    picks = timing.integers(0, 1 << 30, n)
    specs = []
    for i in range(n):
        level = int(round(latents["wording"][i] * 3))
        pool = SENTENCES[level]
        specs.append(
            ClipSpec(
                clip_id=f"demo_{i:05d}",
                split=splits[i],
                seed=int(np.random.SeedSequence([params.seed, 4, i]).generate_state(1)[0]),
                smile=float(latents["smile"][i]),
                brow=float(latents["brow"][i]),
                arousal=float(latents["arousal"][i]),
                pitch=float(latents["pitch"][i]),
                wording=float(latents["wording"][i]),
                sentence=pool[picks[i] % len(pool)],
                duration_s=float(durations[i]),
                fps=params.video_fps,
                size=params.frame_size,
                fault=faults[i],
            )
        )
    return specs, labels


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already keeps every core busy.
    cv2.setNumThreads(1)


def _write_one(job: tuple[Path, ClipSpec]) -> dict[str, Any]:
    path, spec = job
    return write_clip(path, spec)


def generate_demo(out_dir: str | Path, params: DemoParams, *, workers: int = 2, ceiling_draws: int = 200_000) -> dict[str, Any]:
    """Write the whole dataset to ``out_dir`` (replaced as a whole: built beside it, then swapped in).

    Clips are rendered by ``workers`` processes, each from its own derived seed, so the output
    does not depend on ``workers``. Returns the ceiling dict also written to ceiling.json.
    """
    out_dir = Path(out_dir)
    specs, labels = plan_clips(params)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    build.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
    try:
        jobs = [(build / "clips" / spec.filename, spec) for spec in specs]
        (build / "clips").mkdir()
        if workers > 1:
            # spawn: a caller that already runs torch or mediapipe threads cannot be forked safely.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
                timings = list(pool.map(_write_one, jobs))
        else:
            timings = [_write_one(job) for job in jobs]
        latents = {k: np.array([getattr(s, k) for s in specs]) for k in LATENTS}
        expected = conditional_expected_labels(latents, MODALITY_NAMES, params.label_noise)
        _write_tables(build, specs, labels, expected, timings)
        ceiling = noise_ceiling(label_noise=params.label_noise, seed=params.seed, n_draws=ceiling_draws)
        # The same ceiling on the clips actually written: what a perfect model would score per split.
        splits = np.array([s.split for s in specs])
        ceiling["generated"] = {split: _score(expected[splits == split], labels[splits == split]) for split in SPLITS}
        write_json(ceiling, build / "ceiling.json")
        _swap_in(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return ceiling


def _write_tables(
    root: Path, specs: list[ClipSpec], labels: np.ndarray, expected: np.ndarray, timings: list[dict[str, Any]]
) -> None:
    lines = [",".join(("clip_id", "split", *EMOTIONS))]
    lines += [",".join((s.clip_id, s.split, *(f"{v:.6f}" for v in row))) for s, row in zip(specs, labels)]
    write_text("\n".join(lines) + "\n", root / "labels.csv")
    faults = {
        s.clip_id: {
            "fault": s.fault,
            "status": FAULTS[s.fault].status,
            "path": f"clips/{s.filename}",
            "modalities": {m: getattr(FAULTS[s.fault], m) for m in MODALITY_NAMES},
        }
        for s in specs
        if s.fault is not None
    }
    write_json(faults, root / "faults.json")
    columns: dict[str, Any] = {
        "clip_id": [s.clip_id for s in specs],
        "split": [s.split for s in specs],
        "fault": [s.fault for s in specs],
        "path": [f"clips/{s.filename}" for s in specs],
        **{k: [getattr(s, k) for s in specs] for k in LATENTS},
        "wording_level": [int(round(s.wording * 3)) for s in specs],
        "sentence": [s.sentence for s in specs],
    }
    for key in ("duration_s", "n_frames", "speech_start_s", "speech_end_s", "espeak_pitch", "espeak_speed", "espeak_amplitude"):
        columns[key] = [t[key] for t in timings]
    for column, emotion in enumerate(EMOTIONS):
        columns[f"expected_{emotion}"] = expected[:, column]
    write_parquet(pa.table(columns), root / "latents.parquet")


def _swap_in(build: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``build`` so a reader never sees a half-written dataset."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(build, out_dir)
    if old is not None:
        shutil.rmtree(old)
