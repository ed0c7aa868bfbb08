"""Which adapter reads a release, and what it gives: the manifest and, frame-level, every task's labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipeline.ingest import affwild2
from pipeline.ingest.frame_labels import TRACK_MANIFEST_SCHEMA
from pipeline.ingest.manifest import SPLITS, IngestError, build_manifest


@dataclass
class Ingested:
    """A release read: the manifest table, and for a frame-level release each task's labels."""

    manifest: pa.Table
    tasks: list[affwild2.TaskLabels]


def is_frame_release(source: str, root: str | Path) -> bool:
    """Aff-Wild2, or the demo folder when make_demo wrote a frame-level release (an annotation folder)."""
    if source == "affwild2":
        return True
    root = Path(root)
    return source == "demo" and root.is_dir() and any(affwild2.ANNOTATIONS.match(p.name) for p in root.iterdir())


def read_release(source: str, root: str | Path, *, limit_per_split: int | None = None) -> Ingested:
    """The manifest (and frame labels) of the release at ``root`` read with the ``source`` adapter."""
    if not is_frame_release(source, root):
        return Ingested(build_manifest(source, root, limit_per_split=limit_per_split), [])
    release = affwild2.discover(root)
    tasks = [
        affwild2.limit_tracks(affwild2.read_task(release, t), limit_per_split) for t in affwild2.present_tasks(release)
    ]
    if not tasks:
        raise IngestError(f"{root}: no VA, EXPR or AU annotations or test lists found")
    rows = affwild2.track_rows(release, tasks)
    rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["clip_id"]))
    return Ingested(pa.Table.from_pylist(rows, schema=TRACK_MANIFEST_SCHEMA), tasks)
