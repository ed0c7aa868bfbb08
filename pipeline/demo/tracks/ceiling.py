"""Noise ceilings of the frame-level demo: the best score any model could reach, per task, for the
noise-free latents and for what each set of modalities shows (``posterior``).

- VA: the best concordance of any predictor f(O) with y is ``corr(E[y | O], y)``, reached by
  E[y | O] rescaled to y's mean and spread (CCC <= 2 cov(f, y) / (var f + var y) and
  cov(f, y) = cov(f, E[y | O])). E[y | O] is exact: the label noise has mean 0 given the latents,
  and the noise-free label is linear in each segment's latents (``model.crossfade``).
- EXPR: macro F1 is not maximised by the most probable class (for two classes that look alike, it
  pays to name each sometimes). The rule starts as the arg max of P(class | O) and is improved by
  Frank-Wolfe ascent with line search on the expected-count macro F1 over the distinct posteriors
  (a soft rule: the share of a posterior's frames given each class), fitted on the model's Monte
  Carlo draws from their posteriors (not their labels), then scored on labels, as sklearn does
  (soft counts; a class absent from truth and prediction scores 0).
- AU: per AU, the threshold on P(AU | O) that maximises the expected F1 on the Monte Carlo draws
  (a threshold rule is optimal for F1), then scored as sklearn would.

Every score is pooled over the valid frames of a group: the model's draws ("model") or a split
of the generated tracks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline.demo.latent import modality_subsets
from pipeline.demo.tracks.labels import annotate
from pipeline.demo.tracks.model import (
    LENGTH_SPREAD,
    SPEECH_AU,
    Timeline,
    TrackPlan,
    crossfade,
    draw_plan,
    speaking,
    timeline,
    truth,
)
from pipeline.demo.tracks.posterior import LATENTS, Posterior, Segments, posterior
from pipeline.evaluate.metrics import pearson
from pipeline.tasks import ACTION_UNITS, EXPRESSIONS

LEVELS: tuple[str, ...] = (LATENTS, *("+".join(s) for s in modality_subsets()))
TASK_NAMES: tuple[str, ...] = ("va", "expr", "au")
MODEL = "model"
MODEL_FPS = 5.0  # the model's draws are scored at the decoder's rate; frames of a track are alike


@dataclasses.dataclass(frozen=True, kw_only=True)
class Record:
    """One track's plan, timeline, speech mask and labels ((n, K), NaN invalid); ``tasks`` it is in."""

    plan: TrackPlan
    line: Timeline
    talking: np.ndarray
    va: np.ndarray
    expr: np.ndarray
    au: np.ndarray
    group: str
    tasks: frozenset[str]


def model_records(*, seed: int, n_tracks: int, seconds: float, va_noise: float, label_flip: float) -> list[Record]:
    """``n_tracks`` one-person tracks drawn from the generative model, at MODEL_FPS, with labels."""
    rng = np.random.default_rng([seed, 0xCE1, 7])
    records = []
    for _ in range(n_tracks):
        plan = draw_plan(rng, seconds * float(rng.uniform(*LENGTH_SPREAD)))
        times = np.arange(int(plan.duration * MODEL_FPS)) / MODEL_FPS
        line = timeline(plan, times)
        talking = speaking(times, plan.planned_spans())
        true = truth(plan, line, talking)
        va, expr, au = annotate(true, line.pan, rng, va_noise=va_noise, label_flip=label_flip, fps=MODEL_FPS)
        tasks = frozenset(TASK_NAMES)
        records.append(Record(plan=plan, line=line, talking=talking, va=va, expr=expr, au=au, group=MODEL, tasks=tasks))
    return records


def _concat(records: list[Record]) -> tuple[Timeline, dict[str, np.ndarray]]:
    """One timeline over all records, segment indices offset into the concatenated Segments."""
    offsets = np.cumsum([0] + [len(r.plan.starts) for r in records[:-1]])
    line = Timeline(
        segment=np.concatenate([r.line.segment + o for r, o in zip(records, offsets, strict=True)]),
        weight=np.concatenate([r.line.weight for r in records]),
        dominant=np.concatenate([r.line.dominant + o for r, o in zip(records, offsets, strict=True)]),
        sway=np.concatenate([r.line.sway for r in records]),
        pan=np.concatenate([r.line.pan for r in records]),
    )
    columns = {name: np.concatenate([getattr(r, name) for r in records]) for name in ("talking", "va", "expr", "au")}
    columns["group"] = np.concatenate([np.full(len(r.talking), r.group) for r in records])
    for task in TASK_NAMES:
        columns[f"in_{task}"] = np.concatenate([np.full(len(r.talking), task in r.tasks) for r in records])
    return line, columns


def ceilings(records: list[Record], *, label_flip: float) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {group: {level: score}}} for every level (LATENTS and each modality subset)."""
    segments = Segments.of([r.plan for r in records])
    line, columns = _concat(records)
    groups = sorted(set(columns["group"]))
    out: dict[str, dict[str, dict[str, Any]]] = {t: {g: {} for g in groups} for t in TASK_NAMES}
    for level in LEVELS:
        post = posterior(segments, level)
        va = crossfade(line, post.expressed[post.index], post.mood[post.index])
        atom = post.index[line.dominant]
        p_au = _au_probabilities(post, atom, columns["talking"])
        valid = {
            "va": np.isfinite(columns["va"]).all(axis=1) & columns["in_va"],
            "expr": np.isfinite(columns["expr"]) & columns["in_expr"],
            "au": np.isfinite(columns["au"]).all(axis=1) & columns["in_au"],
        }
        fit = columns["group"] == MODEL
        rule = expression_rule(post.expression, atom[fit & valid["expr"]], label_flip)
        thresholds = au_thresholds(p_au[fit & valid["au"]], label_flip)
        for group in groups:
            mask = {t: v & (columns["group"] == group) for t, v in valid.items()}
            out["va"][group][level] = va_score(va[mask["va"]], columns["va"][mask["va"]])
            out["expr"][group][level] = expr_score(
                rule, post.expression, atom[mask["expr"]], columns["expr"][mask["expr"]]
            )
            out["au"][group][level] = au_score(p_au[mask["au"]] >= thresholds, columns["au"][mask["au"]])
    return out


def _au_probabilities(post: Posterior, atom: np.ndarray, talking: np.ndarray) -> np.ndarray:
    p_au = post.au[atom]
    p_au[:, SPEECH_AU] = np.where(talking, 1.0, p_au[:, SPEECH_AU])  # lips part while speaking: seen by all
    return p_au


def va_score(pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    per = [pearson(pred[:, k], labels[:, k]) for k in range(2)]
    return {
        "valence": round(per[0], 4),
        "arousal": round(per[1], 4),
        "mean": round(float(np.mean(per)), 4),
        "frames": len(labels),
    }


# ------------------------------------------------------------------------------------ expression
def _label_distribution(p_class: np.ndarray, flip: float) -> np.ndarray:
    """P(annotated class | O) from P(true class | O): a flipped frame gets one of the 7 other classes."""
    others = len(EXPRESSIONS) - 1
    return (1.0 - flip) * p_class + flip / others * (1.0 - p_class)


def _soft_macro(rule: np.ndarray, counts: np.ndarray, expected: np.ndarray) -> float:
    tp = (rule * expected).sum(axis=0)
    denominator = (rule * counts[:, None]).sum(axis=0) + expected.sum(axis=0)
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)))


def expression_rule(p_class: np.ndarray, atoms: np.ndarray, flip: float, steps: int = 400) -> np.ndarray:
    """(U, 8) soft decision rule over the distinct posteriors ``p_class`` (U, 8), fitted on the frames
    whose posterior index is ``atoms``: arg max, then Frank-Wolfe ascent of the expected macro F1
    with a line search over halving steps, stopping when no step helps. Rows without frames keep the
    arg max."""
    rule = np.eye(p_class.shape[1])[np.argmax(p_class, axis=1)]
    counts = np.bincount(atoms, minlength=len(p_class)).astype(np.float64)
    active = counts > 0
    expected = counts[:, None] * _label_distribution(p_class, flip)
    best = _soft_macro(rule, counts, expected)
    for _ in range(steps):
        tp = (rule * expected).sum(axis=0)
        denominator = (rule * counts[:, None]).sum(axis=0) + expected.sum(axis=0)
        gradient = (expected * denominator - tp * counts[:, None]) / np.maximum(denominator, 1e-12) ** 2
        vertex = np.eye(p_class.shape[1])[np.argmax(gradient, axis=1)]
        vertex[~active] = rule[~active]
        for gamma in 0.5 ** np.arange(12):
            trial = (1.0 - gamma) * rule + gamma * vertex
            value = _soft_macro(trial, counts, expected)
            if value > best + 1e-12:
                rule, best = trial, value
                break
        else:
            break
    return rule


def expr_score(rule: np.ndarray, p_class: np.ndarray, atoms: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Macro F1 of the soft rule (and of the arg max) on ``labels`` (n,) class indices."""
    truth = np.eye(len(EXPRESSIONS))[labels.astype(int)]
    hard = np.eye(len(EXPRESSIONS))[np.argmax(p_class, axis=1)]
    per = _f1(rule[atoms], truth)
    return {
        "macro": round(float(per.mean()), 4),
        "map": round(float(_f1(hard[atoms], truth).mean()), 4),
        "per_class": {name: round(float(v), 4) for name, v in zip(EXPRESSIONS, per, strict=True)},
        "frames": len(labels),
    }


def _f1(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-column F1 of (n, K) soft or 0/1 predictions against 0/1 truth; 0 where TP + FP + FN = 0."""
    tp = (pred * truth).sum(axis=0)
    denominator = pred.sum(axis=0) + truth.sum(axis=0)
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


# -------------------------------------------------------------------------------- action units
def au_thresholds(p_au: np.ndarray, flip: float) -> np.ndarray:
    """(12,) per-AU threshold on P(AU | O) maximising the expected F1 over the frames ``p_au`` (n, 12).

    Frames are sorted by probability; a cut falls only between distinct values (equal posteriors get
    the same answer); predicting no frame is never better than the best cut.
    """
    thresholds = np.ones(p_au.shape[1])
    for k in range(p_au.shape[1]):
        values, counts = np.unique(-p_au[:, k], return_counts=True)  # descending probability
        probability = -values
        expected = counts * ((1.0 - flip) * probability + flip * (1.0 - probability))
        tp, predicted = np.cumsum(expected), np.cumsum(counts)
        f1 = 2 * tp / (predicted + expected.sum())
        if len(f1):
            thresholds[k] = probability[int(np.argmax(f1))]
    return thresholds


def au_score(pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    per = _f1(pred.astype(np.float64), labels.astype(np.float64))
    return {
        "mean": round(float(per.mean()), 4),
        "per_au": {name: round(float(v), 4) for name, v in zip(ACTION_UNITS, per, strict=True)},
        "frames": len(labels),
    }
