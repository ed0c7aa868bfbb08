"""Vega-Lite specs for emi's own pictures, built as plain dicts (JSON, any renderer draws them).

- :func:`with_reference_ticks` adds a layer of black ticks to a one-view bar chart from DVC
  (``dvc plots show --json``): the demo's noise ceiling on the per-emotion Pearson bars.
- :func:`prediction_spec` is ``pipeline.predict --plots``' picture of one input: six bars on a
  fixed [0, 1] axis (pictures of different inputs compare at a glance), which modalities the model
  saw, and the row's status and message.
- :func:`trajectory_spec` is its picture of one video for a frame-level task (va, expr, au): the
  predictions over time, with the frames without a face marked.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier: never fetched
# The keys of a one-view spec that describe its view; the rest (title, size, config) stay on top.
VIEW_KEYS = ("data", "mark", "encoding", "params", "transform")
PRESENT, ABSENT = "#4c78a8", "#b0b0b0"
MESSAGE_WIDTH = 70  # characters per subtitle line
MESSAGE_LINES = 3
TRAJECTORY_POINTS = 1500  # frames drawn at most in a trajectory picture (evenly spread)


def with_reference_ticks(
    spec: Mapping[str, Any], reference: Mapping[str, float], *, category: str, label: str
) -> dict[str, Any]:
    """``spec`` (a one-view horizontal bar chart: a top-level ``mark``, ``category`` on y) with one
    black tick per category at ``reference[category]`` on the same x scale, named ``label`` in
    its own legend. Categories missing from ``reference`` get no tick; ``spec`` is not modified."""
    if "mark" not in spec or "layer" in spec:
        raise ValueError("with_reference_ticks takes a one-view spec (a top-level mark, no layers)")
    spec = copy.deepcopy(dict(spec))
    bars = {key: spec.pop(key) for key in VIEW_KEYS if key in spec}
    # DVC's templates leave unused channels as {} (its column anchor): no channel at all in a layer.
    bars["encoding"] = {k: v for k, v in bars.get("encoding", {}).items() if v != {}}
    x = bars["encoding"]["x"]
    ticks = {
        "data": {"values": [{category: k, "reference": float(v)} for k, v in reference.items()]},
        "mark": {"type": "tick", "thickness": 3, "size": 28, "opacity": 1},
        "encoding": {
            # The bars' field title, so the shared axis keeps one title instead of "pearson, reference".
            "x": {"field": "reference", "type": "quantitative", "title": x.get("title", x.get("field"))},
            "y": {"field": category, "type": "nominal"},
            "color": {
                "datum": label,
                "type": "nominal",
                "scale": {"range": ["black"]},
                # A vertical stroke in the legend, like the tick it names.
                "legend": {
                    "title": None,
                    "symbolType": "M0,-1L0,1",
                    "symbolStrokeColor": "black",
                    "symbolStrokeWidth": 3,
                },
            },
        },
    }
    return {**spec, "layer": [bars, ticks], "resolve": {"scale": {"color": "independent"}}}


def prediction_spec(
    *,
    clip_id: str,
    values: Mapping[str, float],
    present: Mapping[str, bool],
    status: str,
    message: str = "",
    emotions: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One input's picture: ``values`` (emotion -> intensity in [0, 1]) as labelled bars in
    ``emotions`` order, grey when no modality was present (the bars are then the model's prior)."""
    order = list(emotions or values)
    seen = [m for m, ok in present.items() if ok]
    missing = [m for m, ok in present.items() if not ok]
    lines = [
        f"modalities present: {', '.join(seen) or 'none'}" + (f"; absent: {', '.join(missing)}" if missing else ""),
        f"status: {status}",
    ]
    if not seen:
        lines.append("nothing usable in this input: the bars are the model's prior, not a prediction")
    if message:
        lines += textwrap.wrap(f"message: {message}", MESSAGE_WIDTH, max_lines=MESSAGE_LINES, placeholder=" ...")
    rows = [{"emotion": e, "intensity": float(values[e])} for e in order]
    y = {"field": "emotion", "type": "nominal", "sort": order, "title": None}
    x = {"field": "intensity", "type": "quantitative", "scale": {"domain": [0, 1]}, "title": "predicted intensity"}
    return {
        "$schema": SCHEMA,
        "title": {"text": clip_id, "subtitle": lines, "anchor": "start", "subtitleColor": "#444"},
        "width": 320,
        "height": 24 * len(order),
        "data": {"values": rows},
        "encoding": {"y": y, "x": x},
        "layer": [
            {"mark": {"type": "bar", "color": PRESENT if seen else ABSENT}},
            {
                "mark": {"type": "text", "align": "left", "dx": 4},
                "encoding": {"text": {"field": "intensity", "type": "quantitative", "format": ".2f"}},
            },
        ],
    }


def _thin(n: int, most: int) -> np.ndarray:
    """Indices of at most ``most`` evenly spread rows of ``n``."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) if n else np.zeros(0, int)


def _trajectory_layer(task, times: np.ndarray, decisions: np.ndarray, keep: np.ndarray) -> tuple[list, dict]:
    """(rows, layer) of the predictions: va lines, expr class ticks, au heatmap."""
    x = {"field": "time", "type": "quantitative", "title": "time (s)"}
    names = list(task.outputs)
    if task.kind == "multiclass":
        rows = [{"time": float(times[k]), "output": names[int(decisions[k, 0])]} for k in keep]
        y = {"field": "output", "type": "nominal", "sort": names, "scale": {"domain": names}, "title": None}
        color = {"field": "output", "legend": None}
        return rows, {"mark": {"type": "tick", "thickness": 2}, "encoding": {"x": x, "y": y, "color": color}}
    rows = [
        {"time": float(times[k]), "output": n, "value": float(decisions[k, j])}
        for k in keep
        for j, n in enumerate(names)
    ]
    if task.kind == "regression":
        y = {"field": "value", "type": "quantitative", "scale": {"domain": [task.low, task.high]}, "title": None}
        return rows, {"mark": "line", "encoding": {"x": x, "y": y, "color": {"field": "output", "title": None}}}
    y = {"field": "output", "type": "nominal", "sort": names, "title": None}
    color = {
        "field": "value",
        "aggregate": "mean",
        "type": "quantitative",
        "scale": {"domain": [0, 1], "scheme": "greys"},
    }
    encoding = {"x": {**x, "bin": {"maxbins": 120}}, "y": y, "color": {**color, "title": "active"}}
    return rows, {"mark": "rect", "encoding": encoding}


def trajectory_spec(
    *, clip_id: str, task, times: np.ndarray, decisions: np.ndarray, face: np.ndarray, status: str, message: str = ""
) -> dict[str, Any]:
    """One video's predictions over time for a frame-level task (``pipeline.tasks``): va the two
    trajectories on [-1, 1], expr the class at each time, au a heatmap of the active AUs; grey ticks
    along the bottom mark the frames without a face. At most ``TRAJECTORY_POINTS`` frames are drawn."""
    keep = _thin(len(times), TRAJECTORY_POINTS)
    share = float(np.mean(face)) if len(face) else 0.0
    lines = [f"status: {status}", f"frames: {len(times)}, {share:.0%} with a face"]
    if message:
        lines += textwrap.wrap(f"message: {message}", MESSAGE_WIDTH, max_lines=MESSAGE_LINES, placeholder=" ...")
    title = {"text": f"{clip_id} ({task.title})", "subtitle": lines, "anchor": "start", "subtitleColor": "#444"}
    if not len(times):  # nothing decoded: the picture says so (every input has its picture)
        text = {"value": "no frame decoded: no prediction over time"}
        return {"$schema": SCHEMA, "title": title, "width": 560, "height": 60, "data": {"values": [{}]},
                "mark": {"type": "text", "color": ABSENT, "fontSize": 14}, "encoding": {"text": text}}  # fmt: skip
    rows, layer = _trajectory_layer(task, times, decisions, keep)
    layers = [layer]
    faceless = [{"time": float(times[k])} for k in keep if not face[k]]
    if faceless:
        x = {"field": "time", "type": "quantitative"}
        mark = {"type": "tick", "color": ABSENT, "orient": "vertical"}
        layers.append(
            {"data": {"values": faceless}, "mark": mark, "encoding": {"x": x, "y": {"value": 0}, "y2": {"value": 8}}}
        )
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": 560,
        "height": 18 * len(task.outputs) if task.kind == "multilabel" else 200,
        "data": {"values": rows},
        "layer": layers,
    }
