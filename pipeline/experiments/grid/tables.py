"""The papers' ablation tables as data: each row's label, ``-S`` overrides and the paper's number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.config import MODALITIES

_ALL3 = list(MODALITIES)


@dataclass(frozen=True)
class Row:
    """One row of a paper's table.

    ``marks`` fills the table's mark columns (True: ✓, False: ×, None: blank); ``note`` becomes a
    numbered footnote under the table.
    """

    slug: str
    label: str
    overrides: Mapping[str, Any]
    paper: float | None  # None: the paper reports no number for this row
    marks: tuple[bool | None, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Table:
    """One ablation table: ``fixed`` overrides apply to every row; Δ is taken against ``reference``.

    ``requires``: params that select what the stages upstream of the grid compute (features), so
    they are not ``-S`` overrides of each experiment (every experiment would recompute them) but
    must already be in the committed params.yaml: the upstream stages run once, are cached, and
    every experiment checks them out (``run --prepare`` puts them there).
    """

    key: str
    slug: str
    title: str
    source: str
    label_header: str
    mark_headers: tuple[str, ...]
    fixed: Mapping[str, Any]
    rows: tuple[Row, ...]
    reference: str
    notes: tuple[str, ...] = ()
    requires: Mapping[str, Any] | None = None
    # The metric compared (a dotted key of eval/metrics.json) and its column label.
    metric: str = "pearson.mean"
    metric_label: str = "Mean ρ_val"

    def overrides(self, row: Row) -> dict[str, Any]:
        return {**self.fixed, **row.overrides}

    def row(self, slug: str) -> Row:
        return next(r for r in self.rows if r.slug == slug)


_TAEMI = "TAEMI, *Anchoring Emotions in Text* (ABAW 10; seeds/002)"
_USTC = "USTC, *Technical Approach for the EMI Challenge in the 8th ABAW Competition* (seeds/001)"
_TAEMI_ON = {
    "fusion.model": "taemi",
    "fusion.modalities": _ALL3,
    "fusion.concat": False,
    "fusion.cross_attention": True,
    "fusion.missing_tokens": True,
}
# Seed 001 fine-tunes with a weight EMA of decay 0.999 (its SGDR schedule is for the pretraining).
# The USTC paper uses no modality dropout; EMA 0.999 validates as it does.
_USTC_ON = {"fusion.model": "ustc", "train.ema": 0.999, "fusion.modality_dropout": 0.0}
_HUME = (
    "ABAW EMI challenge baselines on the Hume-Vidmimic2 organisers' pre-extracted features "
    "(valid mean Pearson, ../shared/docs/hume-vidmimic2.md)"
)
# The organisers' features as the feature sources (pipeline/features/hume): upstream of the grid.
HUME_FEATURES = {"features.visual.model": "hume-vit", "features.audio.model": "hume-wav2vec2"}

_SEED3 = "Seed 003 (ABAW 10), ../shared/seeds/003; anchors from ../shared/docs/affwild2.md"
_FRAME_NOTE = (
    "The frame-level models (models/frame_*.py) on the pipeline's own features (FER mini-Xception and "
    "face-mesh geometry; audio as configured: `prosody` on the demo, a speech encoder on Aff-Wild2), face "
    "and voice streams, no per-track text token (on few tracks it identifies the track), early stopping "
    "patience 10; the papers' GRADA / DINOv2 / WavLM features and the behaviour stream (a 4B "
    "vision-language model) are out of reach offline."
)
# Every frame-level table: the face and voice streams, and a patience that lets the fusion models'
# gates settle (docs/frame-tasks.md has the measurements).
_FRAME_FIXED = {"fusion.modalities": ["visual", "audio"], "train.patience": 10}

TABLES: tuple[Table, ...] = (
    Table(
        key="taemi_components",
        slug="taemi3",
        title="TAEMI Table 3: ablation of the key components",
        source=_TAEMI + ", Table 3",
        label_header="Variant",
        mark_headers=("TA-CA", "LMT", "MD"),
        fixed={**_TAEMI_ON, "fusion.anchor": "text"},
        rows=(
            Row("concat", "Simple Feature Concat", {"fusion.concat": True}, 0.45, (None, None, None)),
            Row("no-taca", "w/o TA-CA", {"fusion.cross_attention": False}, 0.48, (False, True, True)),
            Row("no-lmt", "w/o LMT", {"fusion.missing_tokens": False}, 0.52, (True, False, True)),
            Row("no-md", "w/o MD", {"fusion.modality_dropout": 0.0}, 0.51, (True, True, False)),
            Row("full", "TAEMI (full)", {}, 0.55, (True, True, True)),
        ),
        reference="full",
        notes=("MD is the configured `fusion.modality_dropout` in every row but w/o MD (0).",),
    ),
    Table(
        key="taemi_anchor",
        slug="taemi4",
        title="TAEMI Table 4: choice of the anchor (query) modality",
        source=_TAEMI + ", Table 4",
        label_header="Anchor Modality (Query)",
        mark_headers=(),
        fixed=_TAEMI_ON,
        rows=(
            Row(
                "vision",
                "Vision-Anchored",
                {"fusion.anchor": "vision"},
                0.39,
                note="The paper's Table 4 prints 0.39 for Vision-Anchored; its text (Choice of Anchor "
                "Modality) says 0.49. The table's number is shown.",
            ),
            Row("audio", "Audio-Anchored", {"fusion.anchor": "audio"}, 0.51),
            Row("text", "Text-Anchored", {"fusion.anchor": "text"}, 0.55),
        ),
        reference="text",
    ),
    Table(
        key="ustc_modules",
        slug="ustc3",
        title="USTC Table 3: module ablation (TFE, QAM)",
        source=_USTC + ", Table 3",
        label_header="Experimental Combination",
        mark_headers=("TFE", "QAM"),
        fixed={**_USTC_ON, "fusion.modalities": _ALL3},
        rows=(
            Row(
                "base", "Baseline (V+A+T)", {"fusion.ustc.tfe": False, "fusion.ustc.qam": False}, 0.3505, (False, False)
            ),
            Row("tfe", "+TFE", {"fusion.ustc.tfe": True, "fusion.ustc.qam": False}, 0.4219, (True, False)),
            Row("qam", "+QAM", {"fusion.ustc.tfe": False, "fusion.ustc.qam": True}, 0.4881, (False, True)),
            Row("tfe-qam", "+TFE + QAM", {"fusion.ustc.tfe": True, "fusion.ustc.qam": True}, 0.5126, (True, True)),
        ),
        reference="tfe-qam",
        notes=("The paper's baseline is ViT+Wav2Vec2.0+BERT; ours uses the configured feature extractors.",),
    ),
    Table(
        key="ustc_modalities",
        slug="ustc4",
        title="USTC Table 4: modality subsets (TFE and QAM on)",
        source=_USTC + ", Table 4",
        label_header="Modalities",
        mark_headers=("Visual", "Audio", "Text"),
        fixed={**_USTC_ON, "fusion.ustc.tfe": True, "fusion.ustc.qam": True},
        rows=(
            Row("v", "V", {"fusion.modalities": ["visual"]}, 0.2683, (True, False, False)),
            Row("vt", "V+T", {"fusion.modalities": ["visual", "text"]}, 0.2834, (True, False, True)),
            Row("a", "A", {"fusion.modalities": ["audio"]}, 0.4703, (False, True, False)),
            Row("va", "V+A", {"fusion.modalities": ["visual", "audio"]}, 0.4846, (True, True, False)),
            Row("at", "A+T", {"fusion.modalities": ["audio", "text"]}, 0.4918, (False, True, True)),
            Row("vat", "V+A+T", {"fusion.modalities": _ALL3}, 0.5126, (True, True, True)),
        ),
        reference="vat",
    ),
    Table(
        key="hume_baselines",
        slug="hume",
        title="Organisers' baselines on their own ViT and wav2vec2 features",
        source=_HUME,
        label_header="Features",
        mark_headers=("ViT", "wav2vec2"),
        fixed={"fusion.model": "taemi", "fusion.concat": True, "fusion.modality_dropout": 0.0},
        rows=(
            Row("vit", "ViT only", {"fusion.modalities": ["visual"]}, 0.09, (True, False)),
            Row("w2v", "wav2vec2 only", {"fusion.modalities": ["audio"]}, 0.24, (False, True)),
            Row("vit-w2v", "ViT + wav2vec2 (concat)", {"fusion.modalities": ["visual", "audio"]}, 0.25, (True, True)),
        ),
        reference="vit-w2v",
        notes=(
            "Ours: TAEMI's Simple Feature Concat (each modality's frames projected, masked mean, "
            "concatenated, MLP head), no modality dropout, on the organisers' pickles read by "
            "`hume-vit` / `hume-wav2vec2` (docs/hume-features.md); the organisers' own baseline model "
            "is not reproduced, their features are.",
        ),
        requires=HUME_FEATURES,
    ),
)
FRAME_TABLES: tuple[Table, ...] = (
    Table(
        key="va_fusion",
        slug="va",
        title="Valence-arousal: the fusion strategies against the visual-only baseline",
        source=_SEED3 + ", abstract 1 (face + behaviour + audio; MoE and reliability-aware fusion)",
        label_header="Fusion",
        mark_headers=("Face", "Audio"),
        fixed=_FRAME_FIXED,
        rows=(
            Row(
                "visual",
                "Visual-only temporal Transformer",
                {"fusion.model": "visual_temporal"},
                None,
                (True, False),
            ),
            Row("reliability", "Reliability-aware AV fusion", {"fusion.model": "reliability"}, None, (True, True)),
            Row("moe", "Directed cross-modal MoE", {"fusion.model": "moe"}, None, (True, True)),
        ),  # fmt: skip
        reference="visual",
        notes=(
            "Seed 003 reports 0.658 mean CCC (development set) for its best fusion, without a breakdown per "
            "strategy; the anchors on Aff-Wild2 are 0.22 (organiser baseline) and 0.568 (HSEmotion ABAW6, smoothed).",
            _FRAME_NOTE,
        ),
        requires={"task": "va", "fusion.model": "reliability"},
        metric="ccc.mean",
        metric_label="Mean CCC_val",
    ),
    Table(
        key="expr_fusion",
        slug="expr",
        title="Expression: dual-branch Transformer, loss and fusion choices",
        source=_SEED3 + ", abstract 4 (dual-branch Transformer, safe cross-attention, focal loss)",
        label_header="Model",
        mark_headers=("Audio", "Focal"),
        fixed=_FRAME_FIXED,
        rows=(
            Row("visual", "Visual-only temporal Transformer", {"fusion.model": "visual_temporal"}, None, (False, True)),
            Row(
                "dual-ce",
                "Dual-branch, cross-entropy",
                {"fusion.model": "dual_branch", "expr.loss": "ce"},
                None,
                (True, False),
            ),
            Row("dual", "Dual-branch, focal loss (the paper's)", {"fusion.model": "dual_branch"}, 0.503, (True, True)),
            Row("reliability", "Reliability-aware fusion", {"fusion.model": "reliability"}, None, (True, True)),
            Row("moe", "Directed cross-modal MoE", {"fusion.model": "moe"}, None, (True, True)),
        ),  # fmt: skip
        reference="dual",
        notes=(
            "Anchors on Aff-Wild2 (macro F1, validation): 0.434 HSEmotion ABAW6, 0.503 seed 003 abstract 4, "
            "0.537 the best ABAW10 entry.",
            _FRAME_NOTE,
        ),
        requires={"task": "expr", "fusion.model": "dual_branch"},
        metric="f1.macro",
        metric_label="Macro F1_val",
    ),
    Table(
        key="au_fusion",
        slug="au",
        title="Action units: fusion choices and the per-AU thresholds",
        source=_SEED3 + ", abstract 3; per-AU thresholds as HSEmotion ABAW6",
        label_header="Model",
        mark_headers=("Audio", "Thresholds on valid"),
        fixed=_FRAME_FIXED,
        rows=(
            Row("visual", "Visual-only temporal Transformer", {"fusion.model": "visual_temporal"}, None, (False, True)),
            Row(
                "reliability-05",
                "Reliability-aware fusion, thresholds 0.5",
                {"fusion.model": "reliability", "au.thresholds": "fixed"},
                None,
                (True, False),
            ),
            Row("reliability", "Reliability-aware fusion", {"fusion.model": "reliability"}, None, (True, True)),
            Row("moe", "Directed cross-modal MoE", {"fusion.model": "moe"}, None, (True, True)),
        ),  # fmt: skip
        reference="reliability",
        notes=("Anchor on Aff-Wild2 (mean F1, validation): 0.546 HSEmotion ABAW6 with per-AU thresholds.", _FRAME_NOTE),
        requires={"task": "au", "fusion.model": "reliability"},
        metric="f1.mean",
        metric_label="Mean F1_val",
    ),
)
TABLES = TABLES + FRAME_TABLES
TABLES_BY_KEY = {t.key: t for t in TABLES}
