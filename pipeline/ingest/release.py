"""Which adapter reads a release, and what it gives: the manifest and, frame-level, every task's labels."""

from __future__ import annotations

import hashlib
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


def media_digests(paths: list[str]) -> list[str | None]:
    """BLAKE2b-128 of each file's bytes (None for a missing or unreadable one), each file read once.

    The manifest carries them so that decode, which depends on the manifest and not on the whole
    release folder, runs again for a video replaced under the same path, and only then: a changed
    label file or organiser pickle leaves every digest, hence the manifest, as it was.
    """
    seen: dict[str, str | None] = {}
    for path in paths:
        if path not in seen:
            try:
                with open(path, "rb") as file:
                    seen[path] = hashlib.file_digest(file, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
            except OSError:
                seen[path] = None
    return [seen[p] for p in paths]


def with_media_digests(manifest: pa.Table) -> pa.Table:
    """``manifest`` with a ``media_digest`` column (see :func:`media_digests`)."""
    digests = media_digests(manifest.column("path").to_pylist())
    return manifest.append_column(pa.field("media_digest", pa.string()), pa.array(digests, pa.string()))


def read_release(source: str, root: str | Path, *, limit_per_split: int | None = None) -> Ingested:
    """The manifest (and frame labels) of the release at ``root`` read with the ``source`` adapter,
    the manifest with each file's ``media_digest``."""
    ingested = _read(source, root, limit_per_split=limit_per_split)
    return Ingested(with_media_digests(ingested.manifest), ingested.tasks)


def _read(source: str, root: str | Path, *, limit_per_split: int | None) -> Ingested:
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
