"""Both fusion models: shapes for every switch, masks and missing modalities, modality dropout."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.taemi import ModalityInput, Taemi, TaemiConfig, drop_modalities
from models.ustc import Ustc, UstcConfig, segment_pool

DIMS = {"visual": 12, "audio": 10, "text": 7}
LENGTHS = {"visual": (9, 3, 1, 6, 9), "audio": (14, 2, 7, 14, 5), "text": (1, 1, 1, 1, 1)}
SMALL = dict(d_model=16, n_heads=4, dropout=0.0, modality_dropout=0.0)


def make_inputs(
    modalities: tuple[str, ...] = tuple(DIMS),
    *,
    pad: int = 0,
    seed: int = 0,
    missing: dict[str, list[int]] | None = None,
) -> dict[str, ModalityInput]:
    """Five samples; ``pad`` extra padded frames filled with garbage; ``missing`` rows per modality."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m in modalities:
        length = torch.tensor(LENGTHS[m])
        T = int(length.max()) + (pad if m != "text" else 0)
        x = torch.randn(len(length), T, DIMS[m], generator=g)
        mask = torch.arange(T)[None] < length[:, None]
        x = torch.where(mask[..., None], x, torch.full_like(x, 1e3))  # padding holds garbage
        present = torch.ones(len(length), dtype=torch.bool)
        for row in (missing or {}).get(m, []):
            present[row] = False
        out[m] = ModalityInput(x, mask, length, present)
    return out


def taemi(modalities: tuple[str, ...] = tuple(DIMS), **kw) -> Taemi:
    torch.manual_seed(0)
    cfg = TaemiConfig(input_dims={m: DIMS[m] for m in modalities}, **{**SMALL, "out_dim": 12, **kw})
    return Taemi(config=cfg).eval()


def ustc(modalities: tuple[str, ...] = tuple(DIMS), **kw) -> Ustc:
    torch.manual_seed(0)
    cfg = UstcConfig(
        input_dims={m: DIMS[m] for m in modalities}, segments=4, tcn_levels=2, encoder_layers=1, **{**SMALL, **kw}
    )
    return Ustc(config=cfg).eval()


TAEMI_SWITCHES = [
    dict(anchor=a, cross_attention=ca, concat=cc, missing_tokens=mt)
    for a, ca, cc, mt in itertools.product(("text", "visual", "audio"), (True, False), (False, True), (True, False))
]
USTC_SWITCHES = [dict(tfe=t, qam=q) for t, q in itertools.product((True, False), (True, False))]
SUBSETS = [("visual",), ("audio",), ("text",), ("visual", "audio"), ("audio", "text"), ("visual", "text")]


def _build(kind: str, modalities: tuple[str, ...], switches: dict) -> torch.nn.Module:
    return taemi(modalities, **switches) if kind == "taemi" else ustc(modalities, **switches)


ALL_CASES = [("taemi", tuple(DIMS), s) for s in TAEMI_SWITCHES] + [("ustc", tuple(DIMS), s) for s in USTC_SWITCHES]
SUBSET_CASES = [("taemi", s, {"anchor": s[-1]}) for s in SUBSETS] + [("ustc", s, {}) for s in SUBSETS]


@pytest.mark.parametrize(("kind", "modalities", "switches"), ALL_CASES + SUBSET_CASES)
def test_shapes_and_finite_with_missing_and_all_missing_samples(kind, modalities, switches) -> None:
    model = _build(kind, modalities, switches)
    # Row 1 misses everything; rows 0 and 3 miss one modality each.
    missing = {m: [1] + ([0] if m == modalities[0] else []) + ([3] if m == modalities[-1] else []) for m in modalities}
    out = model(make_inputs(modalities, missing=missing))
    assert out.shape == (5, 6)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("kind", "modalities", "switches"), ALL_CASES + SUBSET_CASES)
def test_padding_and_missing_content_do_not_change_the_output(kind, modalities, switches) -> None:
    model = _build(kind, modalities, switches)
    missing = {modalities[0]: [2]}
    base = model(make_inputs(modalities, missing=missing))
    # More padding, different garbage in it, and different values in the missing modality's slot.
    other = make_inputs(modalities, pad=5, missing=missing)
    seed0 = make_inputs(modalities, missing=missing)
    changed = {}
    for m, inp in other.items():
        T = seed0[m].x.shape[1]
        x = inp.x.clone()
        x[:, :T] = torch.where(seed0[m].mask[..., None], seed0[m].x, x[:, :T] * 7.0)
        x[:, T:] = -x[:, T:]
        if m == modalities[0]:
            x[2] = torch.randn_like(x[2]) * 50
        changed[m] = inp._replace(x=x)
    torch.testing.assert_close(model(changed), base, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["taemi", "ustc"])
def test_sample_output_does_not_depend_on_its_batch(kind: str) -> None:
    model = _build(kind, tuple(DIMS), {})
    batch = make_inputs(missing={"audio": [4]})
    full = model(batch)
    for row in range(5):
        alone = {}
        for m, inp in batch.items():
            T = max(int(inp.length[row]), 1)
            alone[m] = ModalityInput(
                inp.x[row : row + 1, :T],
                inp.mask[row : row + 1, :T],
                inp.length[row : row + 1],
                inp.present[row : row + 1],
            )
        torch.testing.assert_close(model(alone), full[row : row + 1], rtol=1e-4, atol=1e-5)


def test_invalid_frames_inside_a_clip_are_ignored() -> None:
    """Frames marked invalid (no face) inside the clip's length count no more than padding does."""
    inputs = make_inputs()
    visual = inputs["visual"]
    mask = visual.mask.clone()
    mask[0, 2] = False
    inputs["visual"] = visual._replace(mask=mask)
    for model in (taemi(), ustc()):
        base = model(inputs)
        x = visual.x.clone()
        x[0, 2] = 99.0
        torch.testing.assert_close(model({**inputs, "visual": inputs["visual"]._replace(x=x)}), base)


def test_modality_dropout_only_in_train_mode() -> None:
    model = taemi(modality_dropout=0.5)
    inputs = make_inputs()
    model.eval()
    torch.manual_seed(1)
    a = model(inputs)
    torch.manual_seed(2)
    torch.testing.assert_close(model(inputs), a)  # eval: no randomness at all
    model.train()  # nn.Dropout is 0.0 here: any difference comes from modality dropout
    outs = []
    for seed in range(6):
        torch.manual_seed(seed)
        outs.append(model(inputs))
    assert any(not torch.allclose(o, a) for o in outs)
    zero = taemi(modality_dropout=0.0).train()
    torch.testing.assert_close(zero(inputs), zero.eval()(inputs))


def test_drop_modalities_rate_and_never_all() -> None:
    torch.manual_seed(0)
    n, p = 40000, 0.5
    present = {
        "visual": torch.ones(n, dtype=torch.bool),
        "audio": torch.ones(n, dtype=torch.bool),
        "text": torch.arange(n) % 2 == 0,
    }
    kept = drop_modalities(present, p)
    alive = torch.stack(list(kept.values())).any(dim=0)
    assert alive.all()  # no sample loses everything
    assert not (kept["text"] & ~present["text"]).any()  # never adds a modality
    # Rows with three modalities: a slot is dropped with p, unless all three were drawn (p^3).
    three = present["text"]
    rate = 1.0 - kept["visual"][three].float().mean().item()
    assert rate == pytest.approx(p - p**3, abs=0.015)
    # A sample with a single present modality is never dropped.
    single = drop_modalities({"audio": torch.ones(1000, dtype=torch.bool)}, 0.9)
    assert single["audio"].all()


@pytest.mark.parametrize("modality", ["visual", "audio", "text"])
def test_missing_token_receives_gradient_and_replaces_the_modality(modality: str) -> None:
    model = taemi().train()
    inputs = make_inputs(missing={modality: [0, 3]})
    model(inputs).sum().backward()
    grads = {m: model.missing_token[m].grad for m in DIMS}
    assert grads[modality] is not None and grads[modality].abs().sum() > 0
    assert all(grads[m] is None or grads[m].abs().sum() == 0 for m in DIMS if m != modality)

    # Missing rows: the output follows the token, not the (ignored) features.
    model.eval()
    before = model(inputs)
    with torch.no_grad():
        # Not a constant shift: the LayerNorms downstream would cancel that.
        model.missing_token[modality].add_(torch.randn(16, generator=torch.Generator().manual_seed(0)))
    after = model(inputs)
    changed = (before - after).abs().amax(dim=1) > 1e-6
    assert changed.tolist() == [True, False, False, True, False]


def test_zero_fill_has_no_tokens() -> None:
    model = taemi(missing_tokens=False)
    assert not any("missing_token" in name for name, _ in model.named_parameters())


def test_anchor_must_be_a_used_modality() -> None:
    with pytest.raises(ValueError, match="anchor 'text'"):
        TaemiConfig(input_dims={"visual": 4, "audio": 4}, anchor="text")
    TaemiConfig(input_dims={"visual": 4, "audio": 4}, anchor="text", concat=True)  # anchor unused


def test_cross_attention_fused_width_follows_the_paper() -> None:
    """f = [anchor (d_model); h_1 (out_dim); h_2 (out_dim)] -> W1 has that input width."""
    model = taemi(out_dim=12)
    assert model.head[0].in_features == 16 + 2 * 12
    assert taemi(cross_attention=False).head[0].in_features == 3 * 16


def test_segment_pool_means_and_short_clips() -> None:
    h = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1).repeat(2, 1, 1)
    mask = torch.ones(2, 10, dtype=torch.bool)
    length = torch.tensor([10, 3])
    mask[1, 3:] = False
    pooled, valid = segment_pool(h, mask, length, 4)
    # Clip 0 (L=10): segments [0,1,2], [3,4], [5,6,7], [8,9] (frame t -> floor(4 t / 10)).
    assert pooled[0, :, 0].tolist() == pytest.approx([1.0, 3.5, 6.0, 8.5])
    assert valid[0].all()
    # Clip 1 (L=3, fewer frames than segments): frames 0, 1, 2 -> segments 0, 1, 2; segment 3 empty.
    assert pooled[1, :3, 0].tolist() == pytest.approx([0.0, 1.0, 2.0])
    assert valid[1].tolist() == [True, True, True, False]


def test_qam_weights_ignore_missing_modalities() -> None:
    """A modality absent from every sample gets no QAM weight: its quality MLP gets no gradient."""
    model = ustc(qam=True)
    inputs = make_inputs(missing={"visual": [0, 1, 2, 3, 4], "audio": [0]})
    out = model(inputs)
    assert torch.isfinite(out).all()
    grads = torch.autograd.grad(model.train()(inputs).sum(), model.quality["visual"][0].weight, allow_unused=True)
    assert grads[0] is None or grads[0].abs().sum() == 0  # visual absent everywhere: its score is unused
