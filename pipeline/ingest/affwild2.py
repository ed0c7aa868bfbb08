"""The Aff-Wild2 adapter (``data.source: affwild2``): a release folder, read in place, into tracks and labels.

The layout is ``../shared/docs/affwild2.md``: videos in ``batch1/`` + ``batch2/`` (or ``videos/`` +
``new_vids/``), organiser face crops in ``cropped_aligned/cropped_aligned[_new_50_vids]/<track>/``,
labels in ``<N>th_ABAW_Annotations/<task folder>/{Train_Set,Validation_Set[,Test_Set]}/<track>.txt``
(the newest ``<N>`` when several are present), test tracks in ``names_of_videos_in_each_test_set/``
and the sample submission files in ``prediction_files_format/`` (or ``test_set_examples/``).

Every task present is read at once, so decode, ASR and the features run once for all three tasks and
``-S task=expr`` after a VA run retrains only. A *track* is not a video: ``<video>_left`` and
``<video>_right`` share ``<video>``'s file and each has its own crop folder; any other name is its
own video. The number of per-frame outputs of a track comes from its label file (one line per
frame after the header) or, for a test track, from its rows in the sample file - never from the
decoder, which finds one frame fewer in most tracks. A release that does not match (a missing
video, a malformed label line, a test track absent from the sample file) stops ingest with an
:class:`IngestError` naming the file and the line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.ingest.frame_labels import SampleRow, TrackLabels
from pipeline.ingest.manifest import IngestError
from pipeline.media_types import has_media_suffix
from pipeline.tasks import FRAME_TASKS, Task

VIDEO_FOLDERS = ("batch1", "batch2", "videos", "new_vids")
CROP_FOLDERS = ("cropped_aligned/cropped_aligned", "cropped_aligned/cropped_aligned_new_50_vids", "cropped_aligned")
SPLIT_FOLDERS = {"Train_Set": "train", "Validation_Set": "valid", "Test_Set": "test"}
SIDES = ("left", "right")
ANNOTATIONS = re.compile(r"^(?:(\d+)(?:st|nd|rd|th)_)?ABAW_Annotations$")


@dataclass
class Release:
    """What a release folder holds, found by :func:`discover` (nothing is read yet)."""

    root: Path
    videos: dict[str, Path] = field(default_factory=dict)  # video stem -> file
    crops: dict[str, Path] = field(default_factory=dict)  # track -> crop folder
    annotations: Path | None = None

    def video_of(self, track: str, where: str) -> tuple[str, Path, str | None]:
        """(video stem, file, side) of ``track``: its own video, else the shared one of a _left/_right track."""
        if track in self.videos:
            return track, self.videos[track], None
        stem, _, side = track.rpartition("_")
        if side in SIDES and stem in self.videos:
            return stem, self.videos[stem], side
        folders = ", ".join(f"{f}/" for f in VIDEO_FOLDERS if (self.root / f).is_dir()) or "no video folder"
        raise IngestError(
            f"{where}: no video for track {track!r} (looked for {track}.* and its _left/_right video in {folders})"
        )


def discover(root: str | Path) -> Release:
    """Index the release's videos, crop folders and annotation folder."""
    root = Path(root)
    if not root.is_dir():
        raise IngestError(f"{root}: not a folder (data.root must be the Aff-Wild2 release folder)")
    release = Release(root)
    for folder in VIDEO_FOLDERS:
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if path.is_file() and has_media_suffix(path):
                if path.stem in release.videos:
                    raise IngestError(f"video {path.stem!r} twice: {release.videos[path.stem]} and {path}")
                release.videos[path.stem] = path
    if not release.videos:
        raise IngestError(f"{root}: no videos in {', '.join(f + '/' for f in VIDEO_FOLDERS)}")
    for folder in CROP_FOLDERS:
        base = root / folder
        for path in sorted(base.iterdir()) if base.is_dir() else []:
            if path.is_dir() and not path.name.startswith("cropped_aligned"):
                release.crops.setdefault(path.name, path)
    release.annotations = _annotations(root)
    return release


def _annotations(root: Path) -> Path:
    found = [(int(m.group(1) or 0), p) for p in root.iterdir() if p.is_dir() and (m := ANNOTATIONS.match(p.name))]
    if not found:
        raise IngestError(f"{root}: no annotation folder (<N>th_ABAW_Annotations or ABAW_Annotations)")
    return max(found)[1]  # the newest release's annotations


def task_folder(release: Release, task: Task) -> Path | None:
    """The task's annotation folder (its current name or an older release's), None when absent."""
    return next((release.annotations / n for n in task.folders if (release.annotations / n).is_dir()), None)


# ------------------------------------------------------------------------------------ label files
def read_label_file(path: Path, task: Task) -> np.ndarray:
    """(N, K) float32 labels of one track's file, NaN rows where the frame's label is invalid.

    Line 1 must be the task's header; line i + 1 holds frame i. Trailing blank lines are ignored;
    anything else that is not a label (a wrong field count, a word, a value out of range) raises,
    naming the file and the line.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise IngestError(f"{path}: cannot read it: {error}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    header = tuple(h.strip() for h in lines[0].split(",")) if lines else ()
    if header != task.header:
        raise IngestError(f"{path}: line 1 (header) is {','.join(header)!r}; expected {','.join(task.header)!r}")
    if len(lines) < 2:
        raise IngestError(f"{path}: no frame after the header")
    width = len(task.header) if task.kind != "multiclass" else 1
    out = np.empty((len(lines) - 1, task.label_width), np.float32)
    for row, line in enumerate(lines[1:]):
        out[row] = _parse_line(line, task, width, f"{path}: line {row + 2}")
    return out


def _parse_line(line: str, task: Task, width: int, where: str) -> np.ndarray:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != width:
        raise IngestError(f"{where}: {len(fields)} fields, expected {width} ({','.join(task.header)})")
    try:
        values = np.array([float(f) for f in fields], np.float64)
    except ValueError:
        raise IngestError(f"{where}: {line.strip()!r} is not {width} number(s)") from None
    invalid = values == task.invalid
    if invalid.any():
        return np.full(task.label_width, np.nan, np.float32)
    if task.kind == "regression":
        ok = (values >= task.low) & (values <= task.high)
    elif task.kind == "multiclass":
        ok = (values == np.round(values)) & (values >= 0) & (values < len(task.outputs))
    else:
        ok = np.isin(values, (0.0, 1.0))
    if not ok.all():
        expected = {"regression": f"in [{task.low:g}, {task.high:g}]", "multiclass": f"0..{len(task.outputs) - 1}"}
        rule = expected.get(task.kind, "0 or 1")
        raise IngestError(f"{where}: {line.strip()!r}: values must be {rule} or {task.invalid:g} (invalid frame)")
    return values.astype(np.float32)


# ---------------------------------------------------------------------------------- test set files
def read_test_list(release: Release, task: Task) -> tuple[list[str], Path | None]:
    """The task's test tracks from the organisers' list (names, file), ([], None) without one."""
    path = release.root / "names_of_videos_in_each_test_set" / task.test_list
    if not path.is_file():
        return [], None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise IngestError(f"{path}: line {number}: track {name!r} listed again (first on line {seen[name]})")
        seen[name] = number
    return [name.removesuffix(".txt") for name in names], path


def sample_file(release: Release, task: Task) -> Path | None:
    """The task's sample submission file (…_{tag}_test_set_sample.txt or _example.txt), None without one."""
    for folder in ("prediction_files_format", "test_set_examples"):
        base = release.root / folder
        found = sorted(base.glob(f"*_ABAW_{task.sample_tag}_test_set_*.txt")) if base.is_dir() else []
        if found:
            return found[-1]
    return None


def read_sample_file(path: Path, task: Task) -> list[SampleRow]:
    """The rows of a sample submission file: ``<track>/<frame:05d>.jpg`` and placeholder values."""
    lines = path.read_text(encoding="utf-8").splitlines()
    expected = ("image_location", *task.outputs)
    header = tuple(h.strip() for h in lines[0].split(",")) if lines else ()
    if header != expected:
        raise IngestError(f"{path}: line 1 (header) is {','.join(header)!r}; expected {','.join(expected)!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        location = line.split(",", 1)[0].strip()
        track, _, image = location.rpartition("/")
        stem = image.rsplit(".", 1)[0]
        if not track or not stem.isdigit():
            raise IngestError(f"{path}: line {number}: image_location {location!r} is not <track>/<frame>.jpg")
        rows.append(SampleRow(location, track, int(stem)))
    return rows


def labelled_tracks(release: Release, task: Task) -> Iterable[tuple[str, str, Path]]:
    """(track, split, label file) of every label file of the task, in split then name order."""
    folder = task_folder(release, task)
    if folder is None:
        return
    for name, split in SPLIT_FOLDERS.items():
        base = folder / name
        for path in sorted(base.glob("*.txt")) if base.is_dir() else []:
            yield path.stem, split, path


def present_tasks(release: Release) -> list[Task]:
    """The frame-level tasks with an annotation folder or a test list in the release."""
    return [t for t in FRAME_TASKS if task_folder(release, t) is not None or read_test_list(release, t)[1]]


# ------------------------------------------------------------------------------------ the release
@dataclass
class TaskLabels:
    """One task's tracks and its sample submission rows (in file order)."""

    task: Task
    tracks: dict[str, TrackLabels]
    sample: list[SampleRow]


def read_task(release: Release, task: Task) -> TaskLabels:
    """Every track of ``task``: its label files, its test list and its sample submission file, checked
    against each other (a test track absent from the sample file, or counted differently by a
    released test label file, is an error naming both files)."""
    tracks: dict[str, TrackLabels] = {}
    for track, split, path in labelled_tracks(release, task):
        if track in tracks:
            raise IngestError(f"{task.name}: track {track!r} has two label files: {tracks[track].source} and {path}")
        labels = read_label_file(path, task)
        tracks[track] = TrackLabels(track, split, len(labels), labels, str(path))
    names, list_path = read_test_list(release, task)
    sample_path = sample_file(release, task)
    sample = read_sample_file(sample_path, task) if sample_path else []
    counts = Counter(row.clip_id for row in sample)
    if list_path is None:
        names = list(counts)  # no list: the sample file names the test tracks
    elif stray := sorted(set(counts) - set(names)):
        raise IngestError(f"{sample_path}: rows for tracks not in {list_path}: {stray[:5]}")
    for name in names:
        known = tracks.get(name)
        if known is not None and known.split != "test":
            raise IngestError(f"{list_path}: test track {name!r} also has {known.split} labels in {known.source}")
        if sample_path is not None and name not in counts:
            raise IngestError(f"{list_path}: test track {name!r} has no row in {sample_path}")
        if known is not None and sample_path is not None and counts[name] != known.n_frames:
            raise IngestError(
                f"{known.source}: {known.n_frames} frames, but {sample_path} has {counts[name]} rows for {name!r}"
            )
        if known is None:
            tracks[name] = TrackLabels(name, "test", counts.get(name, 0), None, str(sample_path or list_path))
    return TaskLabels(task, tracks, sample)


def limit_tracks(labels: TaskLabels, per_split: int | None) -> TaskLabels:
    """The first ``per_split`` tracks of each split (by name), and the sample rows of those kept."""
    if per_split is None:
        return labels
    kept: dict[str, TrackLabels] = {}
    for split in ("train", "valid", "test"):
        for name in sorted(n for n, t in labels.tracks.items() if t.split == split)[:per_split]:
            kept[name] = labels.tracks[name]
    return TaskLabels(labels.task, kept, [row for row in labels.sample if row.clip_id in kept])


def track_rows(release: Release, per_task: list[TaskLabels]) -> list[dict]:
    """The manifest rows: every track of any task, with its video, side and crop folder. A track's
    ``split`` is the one of the first task listing it (each task's own is in its labels table)."""
    first: dict[str, tuple[str, str]] = {}
    for labels in per_task:
        for name, track in labels.tracks.items():
            first.setdefault(name, (track.split, track.source))
    rows = []
    for name, (split, source) in first.items():
        video, path, side = release.video_of(name, source)
        crops = release.crops.get(name)
        rows.append(
            {"clip_id": name, "path": str(path), "split": split, "video": video, "side": side,
             "crop_dir": None if crops is None else str(crops)}
        )  # fmt: skip
    return rows
