"""``latents.parquet``: per track and label frame, the latent state, what each modality shows, and the
noise-free labels (the demo's answer key; the release itself holds only the annotators' labels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.demo.tracks.ceiling import Record
from pipeline.demo.tracks.labels import FACE_OUT
from pipeline.demo.tracks.layout import VideoSpec
from pipeline.demo.tracks.model import PITCH_SLOPE, SENTENCE_TEXTS, configurations, truth
from pipeline.tasks import ACTION_UNITS


def latents_table(videos: list[VideoSpec], records: dict[str, Record], rendered: list[dict[str, Any]]) -> pa.Table:
    """One row per label line of every track, tracks in id order, frames from 1.

    Columns: track, video (file), split, tasks; frame, time_s, in_video (false for the extra label
    line past the last frame); segment and its latents (expression, intensity, mood_valence,
    mood_arousal); noise-free labels valence, arousal, expression, au_<AU>; visual: face_seen (the
    segment's face is in the frame), pan, face_in_frame, smile, brow, jaw (as rendered; NaN past the
    last frame); audio and text of the current segment: segment_speaks, sentence, wording_level,
    espeak_speed, espeak_amplitude, espeak_pitch (null when silent); speaking (the frame lies in a
    sentence as rendered).
    """
    parts = [
        _track_columns(video, track.name, track.split, track.tasks, records[track.name], result["jaw"][side])
        for video, result in zip(videos, rendered, strict=True)
        for side, track in enumerate(video.tracks)
    ]
    return pa.table({key: np.concatenate([p[key] for p in parts]) for key in parts[0]})


def _track_columns(
    video: VideoSpec, name: str, split: str, tasks: frozenset[str], record: Record, jaw: np.ndarray
) -> dict[str, np.ndarray]:
    configs = configurations()
    plan, line = record.plan, record.line
    n = len(line.segment)
    true = truth(plan, line, record.talking)
    config = plan.config[line.segment]
    speaks = plan.speaks[line.segment]
    arousal = configs.target[config, 1]
    columns: dict[str, np.ndarray] = {
        "track": np.full(n, name, dtype=object),
        "video": np.full(n, video.filename, dtype=object),
        "split": np.full(n, split, dtype=object),
        "tasks": np.full(n, ",".join(t for t in ("va", "expr", "au") if t in tasks), dtype=object),
        "frame": np.arange(1, n + 1),
        "time_s": np.arange(n) / video.fps,
        "in_video": np.arange(n) < len(jaw),
        "segment": line.segment,
        "expression": true.expression,
        "intensity": configs.intensity[config],
        "mood_valence": configs.mood[config, 0],
        "mood_arousal": configs.mood[config, 1],
        "valence": true.va[:, 0],
        "arousal": true.va[:, 1],
        **{f"au_{au}": true.au[:, k] for k, au in enumerate(ACTION_UNITS)},
        "face_seen": ~plan.absent[line.segment],
        "pan": line.pan,
        "face_in_frame": line.pan < FACE_OUT,
        "smile": true.face[:, 0],
        "brow": true.face[:, 1],
        "jaw": np.concatenate([jaw, np.full(n - len(jaw), np.nan)]),
        "segment_speaks": speaks,
        "sentence": np.array([SENTENCE_TEXTS[s] if s >= 0 else None for s in plan.sentence[line.segment]], object),
        "wording_level": _nullable(configs.level[config], speaks),
        "espeak_speed": _nullable(configs.speed[config], speaks),
        "espeak_amplitude": _nullable(configs.amplitude[config], speaks),
        "espeak_pitch": _nullable(np.clip(plan.pitch_base + np.round(PITCH_SLOPE * arousal), 0, 99), speaks),
        "speaking": record.talking,
    }
    return columns


def _nullable(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return np.array([int(v) if k else None for v, k in zip(values, keep, strict=True)], dtype=object)
