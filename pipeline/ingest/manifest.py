"""Ingest adapters: turn a dataset on disk into the manifest, one row per clip.

Manifest columns: ``clip_id`` (string), ``path`` (string), ``split`` (train | valid | test) and the six
emotion columns (float64, null where unknown). Three sources:

- ``demo``: the folder written by ``stages/make_demo.py`` (``labels.csv`` + ``clips/``);
- ``hume``: a Hume-Vidmimic2 copy (``train_split.csv``, ``valid_split.csv``, ``raw/``,
  ``test_data/raw/``); stems are 5-digit strings, never integers;
- ``manifest``: the user's CSV ``Filename,path,split,<six emotions>``; ``path`` is a video or an
  audio-only file, relative to the CSV's folder unless absolute.

A wrong header, a missing file (or a folder where a file should be), an unknown split, a label
outside [0, 1], a train or valid row without all six labels, a test row with only some, or a
duplicate id (both rows named) raises :class:`IngestError` naming the file and row, before
anything is written. Only the hume adapter pads numeric stems to 5 digits (its release names
files ``00012.mp4``); a user manifest's ``Filename`` is the clip id exactly as written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.media_types import is_media_file

SPLITS: tuple[str, ...] = ("train", "valid", "test")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        *[pa.field(name, pa.float64()) for name in EMOTIONS],
    ]
)


class IngestError(ValueError):
    """The dataset on disk is malformed; the message names the file and the row."""


@dataclass(frozen=True)
class ClipRow:
    clip_id: str
    path: str
    split: str
    labels: tuple[float | None, ...]  # six values in EMOTIONS order, None where unknown
    origin: str = ""  # where the row comes from ("<csv>: row N (...)" or the media path), for messages


def normalize_stem(raw: str) -> str:
    """Hume stems are 5-digit strings; a CSV tool may have dropped the zeros (00012 -> 12)."""
    raw = raw.strip()
    return raw.zfill(5) if raw.isdigit() else raw


def _read_csv(path: Path, expected: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of ``path`` as (row number, {column: stripped text}) after checking the header is exactly
    ``expected``. Row 1 is the header; blank rows are skipped but keep their number. Read by polars
    as strings, one spare column catching rows with too many fields; a missing trailing field
    reads as empty."""
    if path.is_dir():
        raise IngestError(f"{path}: is a folder, expected a CSV file")
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    width = len(expected)
    schema = {f"field{k}": pl.String for k in range(width + 1)}
    try:
        table = pl.read_csv(
            path, has_header=False, schema=schema, truncate_ragged_lines=True, missing_columns="insert",
            raise_if_empty=False,
        )  # fmt: skip
    except (pl.exceptions.PolarsError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise IngestError(f"{path}: cannot read it as a UTF-8 CSV file: {first_line}") from None
    records = [tuple("" if v is None else v.strip() for v in row) for row in table.iter_rows()]
    if not records:
        raise IngestError(f"{path}: empty file, expected header {','.join(expected)}")
    _check_header(path, [h for h in records[0] if h] if records[0][width] else list(records[0][:width]), expected)
    rows = []
    for row_no, values in enumerate(records[1:], start=2):
        if not any(values):
            continue
        if values[width]:
            raise IngestError(f"{path}: row {row_no} has more than {width} fields")
        rows.append((row_no, dict(zip(expected, values[:width], strict=True))))
    return rows


def _check_header(path: Path, header: list[str], expected: tuple[str, ...]) -> None:
    if tuple(header) == expected:
        return
    missing = [h for h in expected if h not in header]
    extra = [h for h in header if h not in expected]
    detail = []
    if missing:
        detail.append(f"missing {missing}")
    if extra:
        detail.append(f"unexpected {extra}")
    if not detail:
        detail.append("columns out of order")
    raise IngestError(
        f"{path}: row 1 (header) is {','.join(header)!r}; expected {','.join(expected)!r} ({'; '.join(detail)})"
    )


def _parse_labels(row: dict[str, str], where: str, *, split: str) -> tuple[float | None, ...]:
    """The six labels of a row. Train and valid rows need all six (a clip with some missing would
    silently train on none); test rows have all six or none."""
    empty = [name for name in EMOTIONS if row[name] == ""]
    if empty and (split != "test" or len(empty) < len(EMOTIONS)):
        rule = "a test row has all six labels or none" if split == "test" else f"a {split} row needs all six"
        raise IngestError(f"{where}: label{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty))} empty ({rule})")
    labels = []
    for name in EMOTIONS:
        text = row[name]
        if text == "":
            labels.append(None)
            continue
        try:
            value = float(text)
        except ValueError:
            raise IngestError(f"{where}: label {name!r} is {text!r}, not a number") from None
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise IngestError(f"{where}: label {name!r} = {value} is outside [0, 1]")
        labels.append(value)
    return tuple(labels)


def _check_unique(rows: Iterable[ClipRow]) -> None:
    seen: dict[str, ClipRow] = {}
    for row in rows:
        if row.clip_id in seen:
            first = seen[row.clip_id]
            raise IngestError(
                f"duplicate clip id {row.clip_id!r}: {first.origin or first.path} and {row.origin or row.path}"
            )
        seen[row.clip_id] = row


def _require_file(path: Path, where: str) -> None:
    if path.is_dir():
        raise IngestError(f"{where}: media path {path} is a folder, not a file")
    if not path.is_file():
        raise IngestError(f"{where}: media file {path} does not exist")


def read_demo(root: Path) -> list[ClipRow]:
    rows = []
    for line_no, row in _read_csv(root / "labels.csv", ("clip_id", "split", *EMOTIONS)):
        where = f"{root / 'labels.csv'}: row {line_no} ({row['clip_id']})"
        candidates = sorted((root / "clips").glob(f"{row['clip_id']}.*"))
        if not candidates:
            raise IngestError(f"{where}: no media file clips/{row['clip_id']}.* under {root}")
        split = _parse_split(row["split"], where)
        rows.append(ClipRow(row["clip_id"], str(candidates[0]), split, _parse_labels(row, where, split=split), where))
    return rows


def read_hume(root: Path) -> list[ClipRow]:
    rows = []
    for split in ("train", "valid"):
        csv_path = root / f"{split}_split.csv"
        for line_no, row in _read_csv(csv_path, LABEL_CSV_HEADER):
            stem = normalize_stem(row["Filename"])
            where = f"{csv_path}: row {line_no} (Filename {row['Filename']})"
            media = root / "raw" / f"{stem}.mp4"
            _require_file(media, where)
            rows.append(ClipRow(stem, str(media), split, _parse_labels(row, where, split=split), where))
    test_dir = root / "test_data" / "raw"
    if test_dir.is_dir():
        for media in sorted(test_dir.glob("*.mp4")):
            rows.append(ClipRow(normalize_stem(media.stem), str(media), "test", (None,) * len(EMOTIONS), str(media)))
    return rows


def read_user_manifest(csv_path: Path) -> list[ClipRow]:
    """The user's CSV; ``Filename`` is the clip id as written (``12`` and ``00012`` are two clips)."""
    rows = []
    for line_no, row in _read_csv(csv_path, ("Filename", "path", "split", *EMOTIONS)):
        where = f"{csv_path}: row {line_no} (Filename {row['Filename']})"
        if not row["Filename"]:
            raise IngestError(f"{where}: empty Filename")
        split = _parse_split(row["split"], where)
        media = Path(row["path"])
        if not media.is_absolute():
            media = csv_path.parent / media
        _require_file(media, where)
        if not is_media_file(media):
            raise IngestError(
                f"{where}: {media.name} is neither a known video or audio file type (pipeline/media_types.py) "
                "nor starts like one"
            )
        rows.append(ClipRow(row["Filename"], str(media), split, _parse_labels(row, where, split=split), where))
    return rows


def _parse_split(text: str, where: str) -> str:
    if text not in SPLITS:
        raise IngestError(f"{where}: split {text!r} is not one of {SPLITS}")
    return text


def build_manifest(source: str, root: str | Path, *, limit_per_split: int | None = None) -> pa.Table:
    """Read the dataset at ``root`` with the ``source`` adapter; rows sorted by (split, clip_id)."""
    root = Path(root)
    readers = {"demo": read_demo, "hume": read_hume, "manifest": read_user_manifest}
    if source not in readers:
        raise IngestError(f"unknown data.source {source!r}; expected one of {sorted(readers)}")
    rows = readers[source](root)
    if not rows:
        raise IngestError(f"{root}: no clips found for data.source={source}")
    _check_unique(rows)
    rows.sort(key=lambda r: (SPLITS.index(r.split), r.clip_id))
    if limit_per_split is not None:
        kept: dict[str, int] = {}
        limited = []
        for row in rows:
            kept[row.split] = kept.get(row.split, 0) + 1
            if kept[row.split] <= limit_per_split:
                limited.append(row)
        rows = limited
    columns = {
        "clip_id": [r.clip_id for r in rows],
        "path": [r.path for r in rows],
        "split": [r.split for r in rows],
    }
    for index, name in enumerate(EMOTIONS):
        columns[name] = [r.labels[index] for r in rows]
    return pa.table(columns, schema=MANIFEST_SCHEMA)
