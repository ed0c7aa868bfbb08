"""Clips of some splits in memory, ready for the fusion models: features, masks, labels.

``load_clips`` reads the manifest rows of the requested splits and, per modality in use, streams the
feature shards (``pipeline.features.shards.read_features``) keeping one small float16 (T, D) array per clip.
``ClipTable.batches`` collates padded float32 batches of ``ModalityInput``.

Long clips (:func:`pool_segments`): a sequence longer than its budget ``L`` (``max_visual_frames``
/ ``max_audio_frames``) is reduced to ``L`` steps covering the whole clip: its T frames are split
into ``L`` contiguous segments, segment k holding frames ``floor(k T / L)`` to
``floor((k + 1) T / L) - 1``, and each step is the mean of its segment's valid frames (a segment
with none is an invalid step). A sequence within its budget is unchanged. At 5 fps the default
budgets are 80 s of video and 120 s of audio frames, so a 20-minute clip's visual step averages
15 frames (3 s). Training, evaluation and ``pipeline.predict`` all build their inputs here, so
they see long clips alike.

A modality is *missing* for a clip when its record says ``available == False``, when it has no
valid frame, or when the shards hold no record for the clip at all (counted in
``ClipTable.missing_counts``); a modality not in ``fusion.modalities`` is not loaded. Every manifest
row of the requested splits is kept, whatever is missing, so predictions never lose a clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from models.common import ModalityInput
from pipeline.config import MODALITIES
from pipeline.emotions import EMOTIONS
from pipeline.features import ClipFeatures
from pipeline.features.shards import ModalityInfo, read_features, shard_info


@dataclass
class Batch:
    """A padded batch: inputs per modality, labels (B, 6) float32 with NaN where unknown."""

    clip_ids: list[str]
    inputs: dict[str, ModalityInput]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.clip_ids)

    def to(self, device: torch.device | str) -> Batch:
        moved = {m: ModalityInput(*(t.to(device) for t in inp)) for m, inp in self.inputs.items()}
        return Batch(self.clip_ids, moved, self.labels.to(device))

    def without(self, absent: Mapping[str, torch.Tensor]) -> Batch:
        """The same batch with ``present`` cleared where ``absent[m]`` (B,) is True."""
        inputs = dict(self.inputs)
        for m, gone in absent.items():
            inp = inputs[m]
            inputs[m] = inp._replace(present=inp.present & ~gone.to(inp.present.device))
        return Batch(self.clip_ids, inputs, self.labels)


@dataclass
class ClipTable:
    """Clips in manifest order. values[m][i]: (T, D) float16 or None (missing); valid[m][i]: (T,) bool."""

    clip_ids: list[str]
    splits: np.ndarray  # (N,) str
    labels: np.ndarray  # (N, 6) float32, NaN where unknown
    values: dict[str, list[np.ndarray | None]]
    valid: dict[str, list[np.ndarray | None]]
    info: dict[str, ModalityInfo]
    missing_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # m -> reason -> clips

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.values)

    def present(self, modality: str) -> np.ndarray:
        """(N,) bool: the modality exists for each clip."""
        return np.array([v is not None for v in self.values[modality]], bool)

    def valid_fraction(self, modality: str) -> np.ndarray:
        """(N,) float32: fraction of the clip's frames that are valid (0 when missing)."""
        return np.array([0.0 if v is None else float(v.mean()) for v in self.valid[modality]], np.float32)

    def select(self, indices: Sequence[int] | np.ndarray) -> ClipTable:
        idx = np.asarray(indices, np.int64)
        return ClipTable(
            clip_ids=[self.clip_ids[i] for i in idx],
            splits=self.splits[idx],
            labels=self.labels[idx],
            values={m: [v[i] for i in idx] for m, v in self.values.items()},
            valid={m: [v[i] for i in idx] for m, v in self.valid.items()},
            info=dict(self.info),
        )

    def split(self, name: str) -> ClipTable:
        return self.select(np.flatnonzero(self.splits == name))

    def labelled(self) -> ClipTable:
        """The clips with all six labels known (the ones training and model selection use)."""
        return self.select(np.flatnonzero(np.isfinite(self.labels).all(axis=1)))

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """Collate clips ``indices`` into a padded Batch (T = longest clip in the batch, >= 1)."""
        idx = [int(i) for i in indices]
        inputs = {}
        for m in self.modalities:
            info = self.info[m]
            seqs = [self.values[m][i] for i in idx]
            T = max([1] + [len(s) for s in seqs if s is not None])
            x = np.zeros((len(idx), T, info.dim), np.float32)
            mask = np.zeros((len(idx), T), bool)
            length = np.zeros(len(idx), np.int64)
            for row, (s, v) in enumerate(zip(seqs, (self.valid[m][i] for i in idx), strict=True)):
                if s is not None:
                    x[row, : len(s)] = s
                    mask[row, : len(s)] = v
                    length[row] = len(s)
            inputs[m] = ModalityInput(
                torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(length), torch.from_numpy(length > 0)
            )
        labels = torch.from_numpy(self.labels[idx].astype(np.float32))
        return Batch([self.clip_ids[i] for i in idx], inputs, labels)

    def batches(self, batch_size: int, *, order: np.ndarray | None = None) -> Iterator[Batch]:
        """Batches over all clips, in ``order`` (a permutation) or table order."""
        order = np.arange(len(self)) if order is None else order
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


def pool_segments(values: np.ndarray, valid: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) values and (T,) valid mask -> at most ``limit`` steps over the whole sequence.

    T <= limit (or no limit): returned as they are. Otherwise ``limit`` contiguous segments of
    near-equal length (``floor(k T / limit)`` boundaries); each step is the float64 mean of its
    segment's valid frames, cast back to the values' dtype, or zeros and invalid when it has none.
    """
    T = len(valid)
    if limit is None or T <= limit:
        return values, valid
    starts = (np.arange(limit, dtype=np.int64) * T) // limit  # strictly increasing: every segment has a frame
    weights = valid.astype(np.float64)
    sums = np.add.reduceat(np.asarray(values, np.float64) * weights[:, None], starts, axis=0)
    counts = np.add.reduceat(weights, starts)
    means = sums / np.maximum(counts, 1.0)[:, None]
    return means.astype(values.dtype, copy=False), counts > 0


def build_clip_table(
    *,
    clip_ids: Sequence[str],
    splits: Sequence[str],
    labels: np.ndarray,
    records: Mapping[str, Iterable[ClipFeatures]],
    info: Mapping[str, ModalityInfo],
    max_frames: Mapping[str, int],
) -> ClipTable:
    """Assemble a ClipTable from per-modality record streams (records of other clips are skipped).

    labels: (N, 6) in EMOTIONS order, NaN where unknown. max_frames: {m: longest kept sequence};
    a longer one is pooled to that many segments (:func:`pool_segments`).
    """
    position = {cid: i for i, cid in enumerate(clip_ids)}
    if len(position) != len(clip_ids):
        raise ValueError("clip ids are not unique")
    values: dict[str, list[np.ndarray | None]] = {}
    valid: dict[str, list[np.ndarray | None]] = {}
    missing: dict[str, dict[str, int]] = {}
    for m in MODALITIES:
        if m not in records:
            continue
        dim, limit = info[m].dim, max_frames.get(m)
        vals: list[np.ndarray | None] = [None] * len(clip_ids)
        oks: list[np.ndarray | None] = [None] * len(clip_ids)
        reasons = ["no record in the feature shards"] * len(clip_ids)
        for rec in records[m]:
            i = position.get(rec.clip_id)
            if i is None:
                continue
            if rec.available and rec.values.ndim == 2 and rec.values.shape[1] != dim:
                raise ValueError(f"{m} features of clip {rec.clip_id} have width {rec.values.shape[1]}, expected {dim}")
            if not rec.available or not np.asarray(rec.valid, bool).any():
                reasons[i] = rec.reason or ("unavailable" if not rec.available else "no valid frame")
                continue
            pooled, ok = pool_segments(rec.values, np.asarray(rec.valid, bool), limit)
            vals[i] = np.ascontiguousarray(pooled, dtype=np.float16)
            oks[i] = ok.copy()
            reasons[i] = ""
        values[m], valid[m] = vals, oks
        counts: dict[str, int] = {}
        for r in reasons:
            if r:
                counts[r] = counts.get(r, 0) + 1
        missing[m] = counts
    return ClipTable(
        clip_ids=list(clip_ids),
        splits=np.asarray(splits, dtype=object),
        labels=np.asarray(labels, np.float32).reshape(len(clip_ids), len(EMOTIONS)),
        values=values,
        valid=valid,
        info={m: info[m] for m in values},
        missing_counts=missing,
    )


def read_manifest(path: str | Path, *, splits: Sequence[str]) -> pa.Table:
    """The manifest rows of ``splits``, in file order."""
    table = pq.read_table(path)
    keep = np.isin(np.asarray(table.column("split").to_pylist(), dtype=object), list(splits))
    return table.filter(pa.array(keep))


def load_clips(
    *,
    manifest: str | Path,
    features: str | Path,
    splits: Sequence[str],
    modalities: Sequence[str],
    max_frames: Mapping[str, int],
) -> ClipTable:
    """Clips of ``splits`` with the ``modalities`` read from ``features/<modality>/`` shards.

    Only the row groups holding these clips are decoded: loading train+valid never decodes a test
    clip's features.
    """
    rows = read_manifest(manifest, splits=splits)
    clip_ids = [str(c) for c in rows.column("clip_id").to_pylist()]
    # Null labels (test split, unknown values) become NaN.
    labels = np.array(
        [[np.nan if v is None else v for v in rows.column(e).to_pylist()] for e in EMOTIONS], np.float64
    ).T
    wanted = [m for m in MODALITIES if m in modalities]
    info = {}
    for m in wanted:
        info[m] = shard_info(Path(features) / m)
    records = {m: read_features(Path(features) / m, clip_ids=clip_ids, modality=m) for m in wanted}
    return build_clip_table(
        clip_ids=clip_ids,
        splits=[str(s) for s in rows.column("split").to_pylist()],
        labels=labels.reshape(len(clip_ids), len(EMOTIONS)),
        records=records,
        info=info,
        max_frames=max_frames,
    )
