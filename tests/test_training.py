"""Training: schedules, EMA, learning a synthetic problem, bit-identical reruns, test-split isolation,
USTC contrastive pretraining, and the train stage end to end on real shard files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from pipeline.config import FusionParams, TrainParams, UstcParams, parse_params
from pipeline.emotions import EMOTIONS
from pipeline.features import ClipFeatures
from pipeline.features.shards import write_shard
from pipeline.train.contrastive import contrastive_loss, contrastive_pretrain
from pipeline.train.dataset import ClipTable, ModalityInfo, build_clip_table, load_clips
from pipeline.train.inference import predict
from pipeline.train.loop import WeightEma, lr_factor, set_determinism, train_model
from pipeline.train.models import build_model, model_config

DIMS = {"visual": 10, "audio": 8, "text": 6}
FAST_FUSION = dict(d_model=32, out_dim=32, n_heads=4, dropout=0.0)
FAST_TRAIN = dict(lr=3e-3, batch_size=32, max_epochs=10, patience=10, warmup_epochs=1.0)
CPU = torch.device("cpu")


# ------------------------------------------------------------------------------ synthetic data
def synthetic_records(
    clip_ids: list[str], *, seed: int, missing: float = 0.1
) -> tuple[np.ndarray, dict[str, list[ClipFeatures]]]:
    """Labels (N, 6) in [0, 1] driven by a 4-d latent per clip that every modality carries with noise.

    visual: 3-20 frames, ~10% invalid (no face); audio: 5-30 frames; text: one vector. Each modality
    is missing for a fraction ``missing`` of the clips (never all three).
    """
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234)  # the same generative model for every split
    A = mix.normal(size=(4, 6))
    B = {m: mix.normal(size=(4, d)) for m, d in DIMS.items()}
    z = rng.normal(size=(len(clip_ids), 4))
    labels = 1.0 / (1.0 + np.exp(-z @ A))
    records: dict[str, list[ClipFeatures]] = {m: [] for m in DIMS}
    for i, cid in enumerate(clip_ids):
        gone = rng.random(3) < missing
        if gone.all():
            gone[rng.integers(3)] = False
        for k, m in enumerate(DIMS):
            if gone[k]:
                records[m].append(ClipFeatures.missing(cid, DIMS[m], "synthetic gap"))
                continue
            T = {"visual": rng.integers(3, 21), "audio": rng.integers(5, 31), "text": 1}[m]
            x = (z[i] @ B[m])[None] + 0.5 * rng.normal(size=(T, DIMS[m]))
            valid = rng.random(T) > (0.1 if m == "visual" else 0.0)
            valid[0] = True
            x[~valid] = 0.0
            records[m].append(ClipFeatures(cid, x.astype(np.float32), np.arange(T, dtype=np.float32) / 5, valid, True))
    return labels, records


def synthetic_table(n: int, *, seed: int, split: str = "train") -> ClipTable:
    ids = [f"{split}{i:04d}" for i in range(n)]
    labels, records = synthetic_records(ids, seed=seed)
    return build_clip_table(
        clip_ids=ids,
        splits=[split] * n,
        labels=labels,
        records=records,
        info={m: ModalityInfo(dim=d, model=f"synthetic-{m}") for m, d in DIMS.items()},
        max_frames={"visual": 400, "audio": 600},
    )


@pytest.fixture(scope="module")
def data() -> tuple[ClipTable, ClipTable]:
    return synthetic_table(256, seed=1), synthetic_table(96, seed=2, split="valid")


def _fit(train: ClipTable, valid: ClipTable, *, fusion: dict | None = None, train_params: dict | None = None):
    fusion_p = FusionParams(**{**FAST_FUSION, **(fusion or {})})
    train_p = TrainParams(**{**FAST_TRAIN, **(train_params or {})})
    set_determinism(train_p.seed, CPU)
    model = build_model(fusion_p.model, model_config(fusion_p, DIMS))
    result = train_model(model=model, train=train, valid=valid, params=train_p, device=CPU, log=lambda _: None)
    return model, result


# ------------------------------------------------------------------------------------ schedules
def test_warmup_then_cosine_values() -> None:
    kw = dict(schedule="cosine", warmup_steps=4, total_steps=24, cycle_steps=10)
    assert [lr_factor(s, **kw) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(4, **kw) == pytest.approx(1.0)
    assert lr_factor(14, **kw) == pytest.approx(0.5)  # half way through the 20 decay steps
    assert lr_factor(9, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)))
    assert lr_factor(24, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(30, **kw) == pytest.approx(0.0, abs=1e-12)  # clamped after the end


def test_sgdr_values_restart_every_cycle() -> None:
    kw = dict(schedule="sgdr", warmup_steps=2, total_steps=100, cycle_steps=10)
    assert lr_factor(2, **kw) == pytest.approx(1.0)
    assert lr_factor(7, **kw) == pytest.approx(0.01 + 0.99 * 0.5)  # mid-cycle
    assert lr_factor(11, **kw) == pytest.approx(0.01 + 0.495 * (1 + math.cos(math.pi * 0.9)))
    assert lr_factor(12, **kw) == pytest.approx(1.0)  # warm restart
    assert min(lr_factor(s, **kw) for s in range(2, 100)) >= 0.01


def test_scheduler_drives_the_optimizer_lr(data) -> None:
    train, valid = data
    model, result = _fit(train, valid, train_params=dict(max_epochs=2, patience=5))
    steps = math.ceil(len(train) / 32)
    # The logged lr is the one used by the last step of each epoch.
    expected = [
        3e-3
        * lr_factor(e * steps - 1, schedule="cosine", warmup_steps=steps, total_steps=2 * steps, cycle_steps=10 * steps)
        for e in (1, 2)
    ]
    assert [h["lr"] for h in result.history] == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ EMA
def test_ema_follows_the_ramped_formula() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = WeightEma(model, decay=0.9)
    expected = 0.0
    for n, value in enumerate(np.linspace(1.0, 30.0, 100)):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert ema.model.weight.item() == pytest.approx(expected, rel=1e-5)
    assert ema.current_decay() == 0.9  # the ramp (1 + n) / (10 + n) passed 0.9 at n = 80


def test_ema_weights_are_validated_and_saved(data) -> None:
    train, valid = data
    model, result = _fit(train, valid, fusion=dict(model="ustc"), train_params=dict(max_epochs=3, ema=0.99))
    live = {k: v for k, v in model.state_dict().items()}
    assert any(not torch.equal(result.state[k], live[k]) for k in live)  # saved != raw weights
    assert result.best_epoch >= 1


# -------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("fusion", [dict(model="taemi"), dict(model="ustc")], ids=["taemi", "ustc"])
def test_learns_a_synthetic_problem(data, fusion: dict) -> None:
    train, valid = data
    model, result = _fit(train, valid, fusion=fusion)
    assert result.best_val > 0.8, [round(h["val_pearson"], 3) for h in result.history]
    model.load_state_dict(result.state)
    per = predict(model, valid, batch_size=64, device=CPU)
    from pipeline.evaluate.metrics import pearson_per_emotion

    assert pearson_per_emotion(per, valid.labels).mean() == pytest.approx(result.best_val, abs=1e-6)


def test_pearson_loss_option_learns_too(data) -> None:
    train, valid = data
    _, result = _fit(train, valid, train_params=dict(loss="pearson"))
    assert result.best_val > 0.7


def test_early_stopping_respects_patience(data) -> None:
    train, valid = data
    # Steps far below float32 resolution leave the weights, hence the validation score, unchanged.
    _, result = _fit(train, valid, train_params=dict(lr=1e-12, warmup_epochs=0.0, max_epochs=30, patience=2))
    assert len({h["val_pearson"] for h in result.history}) == 1
    assert result.best_epoch == 1 and len(result.history) == 3


def test_two_runs_are_bit_identical(data) -> None:
    train, valid = data
    kw = dict(fusion=dict(model="taemi", modality_dropout=0.3, dropout=0.1), train_params=dict(max_epochs=3))
    _, first = _fit(train, valid, **kw)
    _, second = _fit(train, valid, **kw)
    assert first.history == second.history
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)


# --------------------------------------------------------------------------- contrastive (USTC)
class _FixedEmbeddings:
    def __init__(self, emb: dict) -> None:
        self.emb = emb

    def embeddings(self, inputs):
        return self.emb


def test_contrastive_loss_matches_the_weighted_infonce_formula() -> None:
    from models.taemi import ModalityInput

    g = torch.Generator().manual_seed(0)
    zv, zt = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    ok = torch.tensor([True, True, False, True])
    emb = {"visual": (zv, ok), "text": (zt, torch.ones(4, dtype=torch.bool))}
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    length = torch.tensor([4, 4, 2, 2])
    inputs = {"visual": ModalityInput(torch.zeros(4, 4, 5), mask, length, ok)}
    loss = contrastive_loss(_FixedEmbeddings(emb), inputs, temperature=0.07)

    keep = [0, 1, 3]
    a = F.normalize(zv[keep], dim=-1)
    b = F.normalize(zt[keep], dim=-1)
    logits = (a @ b.T / 0.07).double()
    log_v2t = torch.diagonal(torch.log_softmax(logits, dim=1))
    log_t2v = torch.diagonal(torch.log_softmax(logits, dim=0))
    w = torch.tensor([4 / 4, 1 / 4, 2 / 2], dtype=torch.float64)  # valid-frame fractions
    expected = -(w * 0.5 * (log_v2t + log_t2v)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_contrastive_pretraining_aligns_visual_with_text(data) -> None:
    train, _ = data
    fusion = FusionParams(**{**FAST_FUSION, "model": "ustc"})
    set_determinism(0, CPU)
    model = build_model("ustc", model_config(fusion, DIMS))

    def retrieval() -> float:
        model.eval()
        with torch.no_grad():
            emb = model.embeddings(train.batch(np.arange(len(train))).inputs)
        (zv, okv), (zt, okt) = emb["visual"], emb["text"]
        both = okv & okt
        sim = F.normalize(zv[both], dim=-1) @ F.normalize(zt[both], dim=-1).T
        return (sim.argmax(dim=1) == torch.arange(int(both.sum()))).float().mean().item()

    before = retrieval()
    history = contrastive_pretrain(
        model=model,
        train=train,
        params=TrainParams(lr=3e-3, batch_size=64),
        ustc=UstcParams(contrastive_epochs=8),
        device=CPU,
        log=lambda _: None,
    )
    after = retrieval()
    assert history[-1]["contrastive_loss"] < history[0]["contrastive_loss"]
    assert after > max(3 * before, 0.1), (before, after)


# ---------------------------------------------------------------------------------- params
def test_vision_is_accepted_as_the_visual_anchor() -> None:
    assert parse_params({"fusion": {"anchor": "vision"}}).fusion.anchor == "visual"
    assert parse_params({"fusion": {"anchor": "audio"}}).fusion.anchor == "audio"
    assert parse_params({"fusion": {"modalities": ["vision", "text"], "anchor": "text"}}).fusion.modalities == (
        "visual",
        "text",
    )
    with pytest.raises(ValueError, match="not among fusion.modalities"):
        parse_params({"fusion": {"modalities": ["visual", "audio"]}})
    with pytest.raises(ValueError, match="contrastive_pretrain"):
        parse_params(
            {"fusion": {"model": "ustc", "modalities": ["visual", "audio"], "ustc": {"contrastive_pretrain": True}}}
        )


# ------------------------------------------------------------------------ the stage, on files
def write_dataset(root: Path, *, n: dict[str, int], test_seed: int = 3, test_labels: bool = True) -> Path:
    """Manifest + one shard folder per modality under ``root``; returns the manifest path."""
    ids, splits, labels = [], [], []
    records: dict[str, list[ClipFeatures]] = {m: [] for m in DIMS}
    for split, seed in (("train", 1), ("valid", 2), ("test", test_seed)):
        split_ids = [f"{10000 + len(ids) + i}" if split == "test" else f"{split}_{i:03d}" for i in range(n[split])]
        y, recs = synthetic_records(split_ids, seed=seed)
        if split == "test" and not test_labels:
            y = np.full_like(y, np.nan)
        ids += split_ids
        splits += [split] * len(split_ids)
        labels.append(y)
        for m in DIMS:
            records[m] += recs[m]
    y = np.concatenate(labels)
    columns = {"clip_id": pa.array(ids), "path": pa.array([f"clips/{c}.mp4" for c in ids]), "split": pa.array(splits)}
    for k, e in enumerate(EMOTIONS):
        columns[e] = pa.array(y[:, k], pa.float64(), mask=np.isnan(y[:, k]))
    manifest = root / "manifest.parquet"
    pq.write_table(pa.table(columns), manifest)
    for m, recs in records.items():
        by_split = {s: [r for r, sp in zip(recs, splits, strict=True) if sp == s] for s in ("train", "valid", "test")}
        for s, part in by_split.items():
            write_shard(
                root / "features" / m / f"{s}-00000.parquet",
                part,
                modality=m,
                model_name=f"synthetic-{m}",
                dim=DIMS[m],
                dtype="float16",
                fingerprint="test",
            )
    return manifest


def write_params(path: Path, **overrides: dict) -> Path:
    import yaml

    raw = {"fusion": {**FAST_FUSION}, "train": {**FAST_TRAIN, "max_epochs": 4}}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_clips_reads_shards_truncates_and_keeps_every_row(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n={"train": 20, "valid": 8, "test": 6})
    clips = load_clips(
        manifest=manifest,
        features=tmp_path / "features",
        splits=("train", "test"),
        modalities=("visual", "text"),
        max_frames={"visual": 5, "audio": 600},
    )
    assert len(clips) == 26 and set(clips.splits) == {"train", "test"}
    assert clips.modalities == ("visual", "text")
    assert clips.info["visual"] == ModalityInfo(dim=10, model="synthetic-visual")
    assert max(len(v) for v in clips.values["visual"] if v is not None) == 5
    assert all(v.dtype == np.float16 for v in clips.values["visual"] if v is not None)
    assert np.isnan(clips.split("test").labels).sum() == 0  # test labels exist in this fixture
    missing = clips.missing_counts["visual"]
    assert missing == {"synthetic gap": int((~clips.present("visual")).sum())}
    batch = clips.batch([0, 1, 2])
    assert batch.inputs["visual"].x.shape[1] <= 5 and batch.inputs["text"].x.shape[1:] == (1, 6)


def _run_train(tmp_path: Path, manifest: Path, params: Path, out: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from stages.train import main

    assert (
        main(
            [
                "--params",
                str(params),
                "--manifest",
                str(manifest),
                "--features",
                str(manifest.parent / "features"),
                "--labels",
                str(tmp_path / "labels"),
                "--timeline",
                str(tmp_path / "timeline.parquet"),
                "--out",
                str(tmp_path / out),
                "--live",
                str(tmp_path / f"{out}_live"),
            ]
        )
        == 0
    )
    return load_file(str(tmp_path / out / "model.safetensors"))


def test_train_stage_never_sees_the_test_split(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    params = write_params(tmp_path / "params.yaml")
    first = _run_train(tmp_path, write_dataset(a, n={"train": 48, "valid": 16, "test": 12}), params, "model_a")
    # Different test features, different (then absent) test labels, and more test clips.
    second = _run_train(
        tmp_path,
        write_dataset(b, n={"train": 48, "valid": 16, "test": 20}, test_seed=99, test_labels=False),
        params,
        "model_b",
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    for curve in ("metrics.json", "plots/metrics/val_pearson.tsv", "plots/metrics/train_loss.tsv"):
        assert (tmp_path / "model_a_live" / curve).read_bytes() == (tmp_path / "model_b_live" / curve).read_bytes()


def test_train_stage_reports_missing_shards_and_unlabelled_splits(tmp_path: Path, capsys) -> None:
    from stages.train import main

    manifest = write_dataset(tmp_path, n={"train": 8, "valid": 4, "test": 2})
    params = write_params(tmp_path / "params.yaml")
    args = [
        "--params",
        str(params),
        "--manifest",
        str(manifest),
        "--labels",
        str(tmp_path / "labels"),
        "--timeline",
        str(tmp_path / "timeline.parquet"),
        "--out",
        str(tmp_path / "model"),
        "--live",
        str(tmp_path / "live"),
    ]
    assert main([*args, "--features", str(tmp_path / "nowhere")]) == 2
    assert "no feature shards" in capsys.readouterr().err
    table = pq.read_table(manifest)
    unlabelled = table.set_column(table.schema.get_field_index("Joy"), "Joy", pa.nulls(table.num_rows, pa.float64()))
    pq.write_table(unlabelled, manifest)
    assert main([*args, "--features", str(tmp_path / "features")]) == 2
    assert "needs labelled train and valid clips; found 0 and 0" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def _rescaled(table: ClipTable, scale: dict[str, float], shift: dict[str, float]) -> ClipTable:
    values = {
        m: [None if v is None else (v.astype(np.float64) * scale[m] + shift[m]).astype(np.float32) for v in vals]
        for m, vals in table.values.items()
    }
    return ClipTable(
        clip_ids=table.clip_ids,
        splits=table.splits,
        labels=table.labels,
        values=values,
        valid=table.valid,
        info=table.info,
    )


@pytest.mark.parametrize("model", ["taemi", "ustc"])
def test_input_standardisation_makes_training_scale_invariant(data, model: str) -> None:
    """Features whose scale differs by orders of magnitude (Whisper states vs. probabilities) train
    like standardised ones: the train-split statistics are fitted into the model's buffers."""
    train, valid = data
    scale = {"visual": 300.0, "audio": 0.01, "text": 50.0}
    shift = {"visual": 7.0, "audio": -3.0, "text": 0.5}
    _, plain = _fit(train, valid, fusion=dict(model=model), train_params=dict(max_epochs=4))
    _, scaled = _fit(
        _rescaled(train, scale, shift),
        _rescaled(valid, scale, shift),
        fusion=dict(model=model),
        train_params=dict(max_epochs=4),
    )
    # Standardised inputs agree up to float16 storage and float32 rounding of the statistics.
    assert abs(plain.best_val - scaled.best_val) < 0.02
    assert scaled.best_val > 0.5
