"""The demo dataset: determinism, splits, labels, the planted faults (checked with PyAV and ffprobe),
the face is detectable and its smile measurable, the noise ceiling, and the index clips."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import MODALITIES, DemoParams
from pipeline.demo import generate_demo
from pipeline.demo.clips import BOGUS_FPS, FAULTS, ClipSpec, write_clip
from pipeline.demo.latent import (
    EMOTION_WEIGHTS,
    LATENTS,
    conditional_expected_labels,
    draw_latents,
    expected_clipped,
    label_logits,
    noise_ceiling,
)
from pipeline.demo.sentences import SENTENCES
from pipeline.emotions import EMOTIONS
from stages import make_demo

from .media import index_frame, read_index, write_index_clip

os.environ.setdefault("GLOG_minloglevel", "2")

# Short clips keep the suite fast; the sentence still fits (clips stretch to hold it).
TINY = DemoParams(seed=7, n_train=3, n_valid=2, n_test=2, min_seconds=3.0, max_seconds=4.0, label_noise=0.15)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset written through the stage entry point (2 worker processes)."""
    root = tmp_path_factory.mktemp("demo")
    params = root / "params.yaml"
    fields = "\n".join(f"  {k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in TINY.model_dump().items())
    params.write_text(f"demo:\n{fields}\n")
    assert make_demo.main(["--params", str(params), "--out", str(root / "out"), "--workers", "2"]) == 0
    return root / "out"


def _faults(root: Path) -> dict[str, dict]:
    return json.loads((root / "faults.json").read_text())


def _clip_of(root: Path, fault: str) -> Path:
    [entry] = [v for v in _faults(root).values() if v["fault"] == fault]
    return root / entry["path"]


def _normal_clips(root: Path) -> list[Path]:
    faulty = {v["path"] for v in _faults(root).values()}
    return sorted(p for p in (root / "clips").iterdir() if f"clips/{p.name}" not in faulty)


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    return np.concatenate(chunks).astype(np.float64)


def _dbfs(samples: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _frames(path: Path, every: int = 1) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for k, f in enumerate(container.decode(video=0)) if k % every == 0]


# ------------------------------------------------------------------------------ index clips
@pytest.mark.parametrize(
    ("suffix", "pts", "declared"),
    [
        (".mp4", [k / 30 for k in range(45)], None),
        (".mp4", [0.0, 0.013, 0.05, 0.051, 0.2, 0.21, 0.33, 0.9, 0.95], None),
        (".mkv", [0.0, 0.04, 0.07, 0.15, 0.16, 0.31, 0.4], 1000.0),
    ],
)
def test_index_clip_frames_read_back_with_their_pts(tmp_path: Path, suffix: str, pts: list[float], declared) -> None:
    path = tmp_path / f"index{suffix}"
    tone = (0.1 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    write_index_clip(path, pts, declared_fps=declared, audio=tone)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        got = [(round(float(f.time), 3), read_index(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]
    assert got == [(round(p, 3), k) for k, p in enumerate(pts)]
    stream = _ffprobe(path)["streams"][0]
    if declared is not None:
        assert stream["r_frame_rate"] == stream["avg_frame_rate"] == "1000/1"


def test_avi_clip_is_constant_rate_mpeg4_with_pcm_audio(tmp_path: Path) -> None:
    """AVI keeps no timestamps: frame k shows at k / rate; the audio comes back sample for sample."""
    from pipeline.demo.media import mux_clip

    path = tmp_path / "index.avi"
    tone = (0.1 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    pts = [k / 30 for k in range(45)]
    mux_clip(path, (index_frame(k, size=64) for k in range(45)), pts, declared_fps=30, audio=tone)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        got = [(float(f.time), read_index(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert [k for _, k in got] == list(range(45)) and max(abs(t - p) for (t, _), p in zip(got, pts, strict=True)) < 1e-6
    assert audio.dtype == np.int16 and np.abs(audio / 32768.0 - tone).max() < 1e-4
    stream = _ffprobe(path)["streams"][0]
    assert stream["r_frame_rate"] == stream["avg_frame_rate"] == "30/1"
    with pytest.raises(ValueError, match="declared_fps"):
        mux_clip(tmp_path / "bad.avi", [index_frame(0, size=64)] * 2, [0.0, 0.04])
    with pytest.raises(ValueError, match="frame 1"):
        mux_clip(tmp_path / "bad.avi", [index_frame(0, size=64)] * 2, [0.0, 0.05], declared_fps=25)


def test_index_survives_resizing_and_compression_noise() -> None:
    rng = np.random.default_rng(0)
    for index in (0, 1, 5, 1234, 65535):
        frame = index_frame(index, size=64)
        noisy = np.clip(frame.astype(int) + rng.integers(-60, 61, frame.shape), 0, 255).astype(np.uint8)
        assert read_index(noisy) == index
        assert read_index(cv2.resize(frame, (37, 50), interpolation=cv2.INTER_AREA)) == index
    with pytest.raises(ValueError, match="does not fit"):
        index_frame(1 << 16)


def test_index_clip_without_audio_has_no_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    write_index_clip(path, [0.0, 0.2, 0.4])
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0
        assert [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == [0, 1, 2]


# ------------------------------------------------------------------------------ the dataset
def test_two_clips_rendered_twice_are_byte_identical(tmp_path: Path) -> None:
    """Demo generation is a pure function of its params, on the smallest demo (no fault clips)."""
    small = TINY.model_copy(update={"n_train": 2, "n_valid": 2, "n_test": 2, "min_seconds": 1.0, "max_seconds": 1.0})
    small = small.model_copy(update={"faults": False})
    first, second = tmp_path / "a", tmp_path / "b"
    generate_demo(first, small, workers=1, ceiling_draws=2000)
    generate_demo(second, small, workers=1, ceiling_draws=2000)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert [p for p in files if (first / p).read_bytes() != (second / p).read_bytes()] == []


@pytest.mark.slow  # the tiny demo with its fault clips rendered again, in one process instead of two
def test_same_seed_gives_byte_identical_files(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_demo(again, TINY, workers=1)  # one process instead of two: output must not change
    first = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    assert [p for p in first if (tiny / p).read_bytes() != (again / p).read_bytes()] == []


def test_layout_splits_and_labels(tiny: Path) -> None:
    with open(tiny / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["clip_id", "split", *EMOTIONS]
    body = rows[1:]
    ids = [r[0] for r in body]
    assert len(ids) == len(set(ids)) == 7 + len(FAULTS)
    faults = _faults(tiny)
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        assert sum(1 for r in body if r[1] == split and r[0] not in faults) == n
    # Fault clips are spread over all three splits.
    assert {r[1] for r in body if r[0] in faults} == {"train", "valid", "test"}
    labels = np.array([[float(v) for v in r[2:]] for r in body])
    assert labels.shape == (len(ids), 6) and labels.min() >= 0.0 and labels.max() <= 1.0
    for clip_id in ids:
        assert len(list((tiny / "clips").glob(f"{clip_id}.*"))) == 1
    latents = pq.read_table(tiny / "latents.parquet").to_pylist()
    assert [r["clip_id"] for r in latents] == ids
    for row in latents:
        assert -1 <= row["smile"] <= 1 and row["wording_level"] in range(-3, 4)
        assert 0 < row["speech_start_s"] < row["speech_end_s"] <= row["duration_s"] or row["fault"] == "too_short"
        if row["fault"] is None:
            # Drawn in [min_seconds, max_seconds], stretched only to hold the whole sentence.
            longest = max(TINY.max_seconds, row["speech_end_s"] + 0.3)
            assert TINY.min_seconds - 0.05 <= row["duration_s"] <= longest + 0.05
            assert row["duration_s"] >= row["speech_end_s"] + 0.25
        assert all(0 <= row[f"expected_{e}"] <= 1 for e in EMOTIONS)


def test_faults_json_names_status_and_modalities(tiny: Path) -> None:
    faults = _faults(tiny)
    assert sorted(v["fault"] for v in faults.values()) == sorted(FAULTS)
    statuses = {v["fault"]: v["status"] for v in faults.values()}
    assert statuses == {
        "no_audio_stream": "no_audio_stream",
        "silent_audio": "silent_audio",
        "no_face": "no_face",
        "too_short": "too_short",
        "corrupt": "corrupt",
        "variable_frame_rate": "ok",
    }
    for entry in faults.values():
        assert set(entry["modalities"]) == set(MODALITIES)
        assert (tiny / entry["path"]).is_file()


def test_fault_no_audio_stream(tiny: Path) -> None:
    path = _clip_of(tiny, "no_audio_stream")
    kinds = [s["codec_type"] for s in _ffprobe(path)["streams"]]
    assert kinds == ["video"]


def test_fault_silent_audio_versus_normal_speech(tiny: Path) -> None:
    silent = _clip_of(tiny, "silent_audio")
    assert [s["codec_type"] for s in _ffprobe(silent)["streams"]] == ["video", "audio"]
    assert _dbfs(_audio(silent)) < -60.0
    for path in _normal_clips(tiny):
        assert _dbfs(_audio(path)) > -45.0, path.name


def test_fault_too_short(tiny: Path) -> None:
    info = _ffprobe(_clip_of(tiny, "too_short"))
    assert float(info["format"]["duration"]) < 0.3
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}


def test_fault_corrupt_file_is_unreadable(tiny: Path) -> None:
    path = _clip_of(tiny, "corrupt")
    assert path.stat().st_size > 1000  # a truncated real file, not an empty one
    probe = subprocess.run(["ffprobe", "-v", "error", str(path)], capture_output=True, text=True)
    assert probe.returncode != 0
    with pytest.raises(av.error.FFmpegError):
        with av.open(str(path)) as container:
            list(container.decode(video=0))


def test_fault_variable_frame_rate_declares_a_bogus_rate_and_decodes(tiny: Path) -> None:
    path = _clip_of(tiny, "variable_frame_rate")
    video = _ffprobe(path)["streams"][0]
    bogus = f"{int(BOGUS_FPS)}/1"
    assert video["r_frame_rate"] == bogus and video["avg_frame_rate"] == bogus
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == Fraction(1, 1000)
        pts = np.array([float(f.time) for f in container.decode(video=0)])
    gaps = np.diff(pts)
    true_fps = (len(pts) - 1) / (pts[-1] - pts[0])
    assert 18 < true_fps < 33  # about 25 fps in truth, 1000 declared
    assert gaps.std() > 0.008 and gaps.min() > 0
    assert len(_audio(path)) > 16000


def test_face_is_detected_in_normal_clips_and_not_in_the_no_face_clip(tiny: Path) -> None:
    from mediapipe.python.solutions import face_detection

    def fraction(path: Path, model: int) -> float:
        with face_detection.FaceDetection(model_selection=model, min_detection_confidence=0.5) as detector:
            frames = _frames(path, every=5)
            return sum(bool(detector.process(f).detections) for f in frames) / len(frames)

    for path in _normal_clips(tiny) + [_clip_of(tiny, "variable_frame_rate")]:
        assert fraction(path, 0) == 1.0, path.name
    no_face = _clip_of(tiny, "no_face")
    assert fraction(no_face, 0) == 0.0 and fraction(no_face, 1) == 0.0


def test_smile_latent_moves_the_measured_mouth_corners(tmp_path: Path) -> None:
    """Face-mesh mouth-corner lift (lip centre minus corner height, per inter-ocular distance)
    at the held expression tracks the smile latent across clips (correlation > 0.5)."""
    from mediapipe.python.solutions import face_mesh

    smiles = [-0.9, -0.4, 0.1, 0.5, 0.9]
    rng = np.random.default_rng(3)
    lifts = []
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for k, smile in enumerate(smiles):
            spec = ClipSpec(
                clip_id=f"smile_{k}",
                split="train",
                seed=100 + k,
                smile=smile,
                brow=float(rng.uniform(-1, 1)),
                arousal=0.0,
                pitch=0.0,
                wording=0.0,
                sentence="Nice try, it looks good.",
                duration_s=2.5,
            )
            path = tmp_path / f"{spec.clip_id}.mp4"
            write_clip(path, spec)
            values = []
            for frame in _frames(path)[-5:]:  # the expression has risen by then (onset <= 2.1 s)
                points = mesh.process(frame).multi_face_landmarks[0].landmark
                xy = np.array([(p.x, p.y) for p in points]) * frame.shape[1::-1]
                iod = np.linalg.norm(xy[33] - xy[263])
                values.append(((xy[13, 1] + xy[14, 1]) / 2 - (xy[61, 1] + xy[291, 1]) / 2) / iod)
            lifts.append(np.mean(values))
    assert np.corrcoef(smiles, lifts)[0, 1] > 0.5, lifts


# -------------------------------------------------------------------------------- the ceiling
def test_ceiling_json_fused_beats_every_modality_subset(tiny: Path) -> None:
    ceiling = json.loads((tiny / "ceiling.json").read_text())
    assert ceiling["n_draws"] == 200_000 and ceiling["label_noise"] == TINY.label_noise
    fused = ceiling["fused"]["mean"]
    assert 0.85 <= fused <= 0.93
    subsets = ceiling["modalities"]
    assert set(subsets) == {"visual", "audio", "text", "visual+audio", "visual+text", "audio+text", "visual+audio+text"}
    for name in ("visual", "audio", "text"):
        assert subsets[name]["mean"] <= 0.5
    for name, score in subsets.items():
        if name != "visual+audio+text":
            assert score["mean"] < fused - 0.15, name
        assert set(score["per_emotion"]) == set(EMOTIONS)
    assert set(ceiling["generated"]) == {"train", "valid", "test"}


def test_expected_labels_match_closed_form_and_noise_free_ceiling_is_one() -> None:
    latents = draw_latents(np.random.default_rng(0), 2000)
    exact = expected_clipped(1 / (1 + np.exp(-label_logits(latents))), 0.15)
    assert np.abs(conditional_expected_labels(latents, MODALITIES, 0.15) - exact).max() < 1e-5
    # Observing nothing: every column is its constant mean.
    none = conditional_expected_labels(latents, (), 0.15)
    assert np.ptp(none, axis=0).max() < 1e-12
    assert noise_ceiling(label_noise=0.0, seed=0, n_draws=20_000)["fused"]["mean"] == pytest.approx(1.0, abs=1e-9)
    # Monte Carlo check of the clipped-Gaussian mean.
    rng = np.random.default_rng(1)
    mu = np.array([0.02, 0.5, 0.97])
    draws = np.clip(mu + 0.15 * rng.standard_normal((400_000, 3)), 0, 1).mean(axis=0)
    assert np.abs(expected_clipped(mu, 0.15) - draws).max() < 1e-3


def test_generative_model_tables_are_consistent() -> None:
    assert {latent.modality for latent in LATENTS.values()} == set(MODALITIES)
    assert tuple(EMOTION_WEIGHTS) == EMOTIONS
    for weights in EMOTION_WEIGHTS.values():
        # Each emotion reads one or two modalities, never all three.
        assert set(weights) <= set(LATENTS) and 1 <= len({LATENTS[k].modality for k in weights}) <= 2
    assert sorted(SENTENCES) == list(range(-3, 4)) and all(len(pool) >= 3 for pool in SENTENCES.values())


def test_stage_rejects_bad_params(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("demo:\n  n_trian: 3\n")
    assert make_demo.main(["--params", str(bad), "--out", str(tmp_path / "out")]) == 2
    bad.write_text("demo:\n  min_seconds: 9\n  max_seconds: 8\n")
    assert make_demo.main(["--params", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_stage_generates_nothing_when_the_demo_is_not_the_data_source(tmp_path: Path) -> None:
    """A Hume or manifest run must not pay for the demo: the stage leaves only a note."""
    params = tmp_path / "params.yaml"
    out = tmp_path / "out"
    (out / "clips").mkdir(parents=True)  # an earlier demo run's output is replaced, not kept
    (out / "clips" / "demo_00000.mp4").write_bytes(b"old")
    for source in ("hume", "manifest"):
        params.write_text(f"data:\n  source: {source}\n  root: /somewhere\n")
        assert make_demo.main(["--params", str(params), "--out", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["SKIPPED"]
        assert source in (out / "SKIPPED").read_text()
