"""Visual features: one vector per sampled frame from its face crop.

Per frame with a face crop (``VisualInput.crops[t]``, (S, S, 3) uint8 RGB):

- ``fer-mini-xception`` (offline default): the 7 FER2013 class probabilities (angry, disgust, fear,
  happy, sad, surprise, neutral) then the 128-d embedding of :mod:`pipeline.features.fer` -> 135-d;
- a Hugging Face image model id or folder: ``AutoImageProcessor`` + the model's CLS token of the
  last hidden state (ViT, DINOv2; already layer-normed), or its pooled output for CLIP/SigLIP
  vision towers (post-layernorm CLS / attention pool) and CNNs without a token sequence;
- ``landmarks: true`` appends :data:`GEOMETRY_NAMES` (11 values) from the mediapipe face mesh;
- ``hume-vit``: the Hume-Vidmimic2 organisers' own (T, 384) ViT features, read from their pickles
  (:mod:`pipeline.features.hume`) instead of the face crops; ``landmarks`` does not apply.

Frames without a face get zeros and ``valid = False``; a clip with no valid frame is missing. When
the face mesh fails on a crop that has a face, the geometry values are zeros and ``mesh_found`` is
0 but the frame stays valid: its appearance features are still good, and the flag tells the model.
Crops are batched across clips (``batch_size`` per forward pass); CUDA runs under bf16 autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from pipeline.config import VisualFeatureParams
from pipeline.decoded import VisualInput
from pipeline.features import ClipFeatures
from pipeline.features.fer import FER_CLASSES, FER_EMBED_DIM, load_mini_xception, preprocess_faces
from pipeline.features.hume import SOURCES, HumeExtractor, place_vit

FER_MODEL = "fer-mini-xception"
NO_FACE = "no face in any frame"
NO_FRAMES = "no sampled frames"

# Face-mesh geometry, measured in a face frame: origin between the outer eye corners, x along the
# eye line (so head roll cancels), y perpendicular pointing down the face, unit = inter-ocular
# distance (outer corners, so face size cancels). Eye openness is a ratio to the eye's own width.
GEOMETRY_NAMES: tuple[str, ...] = (
    "mouth_width",  # corner to corner (61-291)
    "mouth_open",  # inner lip gap (13-14)
    "mouth_corner_lift",  # lip centre minus mean corner height: > 0 when the corners rise (smile)
    "brow_raise_right",  # eye top (159) to brow middle (105)
    "brow_raise_left",  # eye top (386) to brow middle (334)
    "eye_open_right",  # lid gap (159-145) / eye width (33-133)
    "eye_open_left",  # lid gap (386-374) / eye width (263-362)
    "inner_brow_gap",  # inner brow ends (107-336): narrows in a frown
    "nose_to_upper_lip",  # nose tip (1) to upper lip (0): shortens when the upper lip rises
    "nose_to_chin",  # nose tip (1) to chin (152): jaw drop
    "mesh_found",  # 1 when the mesh was found on the crop, else 0 (and the rest is 0)
)


class FrameEmbedder(Protocol):
    """Face crops -> (B, dim) float32 appearance features."""

    name: str
    dim: int

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


class FerEmbedder:
    """The FER2013 mini-Xception: crops -> (B, 135) = [7 probabilities, 128-d embedding]."""

    name = FER_MODEL
    dim = len(FER_CLASSES) + FER_EMBED_DIM

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = load_mini_xception().to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        pixels = preprocess_faces(crops).to(self.device, memory_format=torch.channels_last)
        with _autocast(self.device):
            probs, embedding = self.model(pixels)
        return torch.cat([probs, embedding], dim=1).float().cpu().numpy()


# Full dual-encoder checkpoints whose vision tower is loaded on its own.
_VISION_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
_POOLED_TYPES = ("clip_vision_model", "siglip_vision_model")


class HFImageEmbedder:
    """A Hugging Face image model: crops -> (B, hidden) CLS token or pooled output."""

    def __init__(self, *, model: str, device: str = "cpu") -> None:
        import transformers

        self.name = model
        self.device = torch.device(device)
        config = transformers.AutoConfig.from_pretrained(model)
        loader = getattr(transformers, _VISION_TOWERS.get(config.model_type, "AutoModel"))
        self.model = loader.from_pretrained(model).to(self.device).eval()
        self.processor = transformers.AutoImageProcessor.from_pretrained(model)
        self.dim = self(np.zeros((1, 32, 32, 3), np.uint8)).shape[1]

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        pixels = self.processor(images=list(crops), return_tensors="pt")["pixel_values"].to(self.device)
        with _autocast(self.device):
            out = self.model(pixel_values=pixels)
        hidden = out.last_hidden_state
        if self.model.config.model_type in _POOLED_TYPES or hidden.ndim != 3:
            pooled = out.pooler_output.flatten(1)
        else:
            pooled = hidden[:, 0]
        return pooled.float().cpu().numpy()


class FaceGeometry:
    """mediapipe face mesh (legacy solution, static images) -> :data:`GEOMETRY_NAMES` per crop."""

    dim = len(GEOMETRY_NAMES)

    def __init__(self) -> None:
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.5
        )

    def landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """(468, 2) landmark pixel coordinates on ``crop``, or None when no face mesh is found."""
        found = self.mesh.process(np.ascontiguousarray(crop)).multi_face_landmarks
        if not found:
            return None
        h, w = crop.shape[:2]
        return np.array([(p.x * w, p.y * h) for p in found[0].landmark], np.float64)

    @staticmethod
    def geometry(points: np.ndarray) -> np.ndarray:
        """(468, 2) landmarks -> (11,) float32 geometry (see :data:`GEOMETRY_NAMES`)."""
        right, left = points[33], points[263]
        iod = float(np.linalg.norm(left - right))
        if iod < 1e-6:
            return np.zeros(len(GEOMETRY_NAMES), np.float32)
        x_axis = (left - right) / iod
        y_axis = np.array([-x_axis[1], x_axis[0]])  # x rotated +90 degrees: down the face in image coordinates
        p = (points - (left + right) / 2) @ np.stack([x_axis, y_axis], axis=1) / iod  # (468, 2) face frame

        def dist(a: int, b: int) -> float:
            return float(np.linalg.norm(p[a] - p[b]))

        y = p[:, 1]
        return np.array(
            [
                dist(61, 291),
                y[14] - y[13],
                (y[13] + y[14]) / 2 - (y[61] + y[291]) / 2,
                y[159] - y[105],
                y[386] - y[334],
                (y[145] - y[159]) / max(dist(33, 133), 1e-6),
                (y[374] - y[386]) / max(dist(263, 362), 1e-6),
                dist(107, 336),
                y[0] - y[1],
                y[152] - y[1],
                1.0,
            ],
            np.float32,
        )

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        points = self.landmarks(crop)
        return np.zeros(len(GEOMETRY_NAMES), np.float32) if points is None else self.geometry(points)


class VisualExtractor:
    """FeatureExtractor for the visual modality: VisualInput -> (T, dim) per clip."""

    modality = "visual"

    def __init__(self, *, embedder: FrameEmbedder, geometry: FaceGeometry | None, batch_size: int) -> None:
        self.embedder = embedder
        self.geometry = geometry
        self.batch_size = batch_size
        self.dim = embedder.dim + (geometry.dim if geometry is not None else 0)
        self.model_name = embedder.name + ("+face-mesh-geometry" if geometry is not None else "")

    def _features(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N crops) -> (N, dim), ``batch_size`` crops per forward pass."""
        parts = [self.embedder(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        appearance = np.concatenate(parts) if parts else np.zeros((0, self.embedder.dim), np.float32)
        if self.geometry is None:
            return appearance
        shape = np.stack([self.geometry(c) for c in crops]) if crops else np.zeros((0, self.geometry.dim), np.float32)
        return np.concatenate([appearance, shape], axis=1)

    def extract_batch(self, inputs: Sequence[VisualInput]) -> list[ClipFeatures]:
        """One record per clip; the valid crops of all clips go through the model together."""
        feats = self._features([crop for x in inputs for crop in x.crops if crop is not None])
        out = []
        start = 0
        for x in inputs:
            T = len(x.crops)
            valid = np.array([c is not None for c in x.crops], bool)
            n = int(valid.sum())
            if n == 0:
                out.append(ClipFeatures.missing(x.clip_id, self.dim, NO_FACE if T else NO_FRAMES))
                continue
            values = np.zeros((T, self.dim), np.float32)
            values[valid] = feats[start : start + n]
            start += n
            out.append(
                ClipFeatures(
                    clip_id=x.clip_id,
                    values=values,
                    times=np.asarray(x.times, np.float32),
                    valid=valid,
                    available=True,
                )
            )
        return out


def build_visual_extractor(params: VisualFeatureParams, *, device: str = "cpu") -> VisualExtractor | HumeExtractor:
    """The extractor ``params`` describe (weights loaded now, on ``device``)."""
    if params.model == "hume-vit":  # the organisers' pickles: no model, no face crops
        return HumeExtractor(SOURCES[params.model], place_vit)
    embedder: FrameEmbedder
    if params.model == FER_MODEL:
        embedder = FerEmbedder(device=device)
    else:
        embedder = HFImageEmbedder(model=params.model, device=device)
    geometry = FaceGeometry() if params.landmarks else None
    return VisualExtractor(embedder=embedder, geometry=geometry, batch_size=params.batch_size)
