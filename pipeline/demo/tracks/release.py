"""The text files of an Aff-Wild2 release (``../shared/docs/affwild2.md``), written from arrays.

One home for the release's formats, so the demo and the tests of the Aff-Wild2 adapter write the
same files: a test can write a miniature release with edge cases (an old ``EXPR_Classification_Challenge``
folder via ``folder=``, a malformed line by editing ``label_lines`` before ``write_lines``).

Formats (line 1 the header, line i + 1 video frame i, ``\\n`` line ends, a final newline):

====  =====================================================  ======================  =========
task  header                                                 data line               invalid
====  =====================================================  ======================  =========
va    ``valence,arousal``                                    ``0.0,0.019``           ``-5``
expr  ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,...``   ``4`` (class 0..7)      ``-1``
au    ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,...``   ``0,1,0,...`` (12)      ``-1``
====  =====================================================  ======================  =========

Labels come in as the pipeline holds them (``pipeline/tasks``): ``(N, K)`` floats, NaN where a
value is invalid; each NaN is written as the task's invalid marker in its own column, so a row can
be invalid in one VA column only. VA values are rounded to 3 decimals and written in Python's
shortest form (``0.0``, ``0.019``, ``-0.164``), as in the release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import write_text
from pipeline.tasks import Task

ANNOTATIONS = "6th_ABAW_Annotations"
SPLIT_FOLDERS: dict[str, str] = {"train": "Train_Set", "valid": "Validation_Set", "test": "Test_Set"}
TEST_LISTS = "names_of_videos_in_each_test_set"
SAMPLES = "prediction_files_format"
VIDEOS = "batch1"


def label_path(
    root: str | Path, task: Task, split: str, track: str, *, annotations: str = ANNOTATIONS, folder: str | None = None
) -> Path:
    """``<root>/<annotations>/<task folder>/<split folder>/<track>.txt``; ``folder`` overrides the task's
    current folder name (e.g. ``EXPR_Classification_Challenge`` of ABAW3/5)."""
    return Path(root) / annotations / (folder or task.folders[0]) / SPLIT_FOLDERS[split] / f"{track}.txt"


def test_list_path(root: str | Path, task: Task) -> Path:
    return Path(root) / TEST_LISTS / task.test_list


def sample_path(root: str | Path, task: Task) -> Path:
    return Path(root) / SAMPLES / f"CVPR_6th_ABAW_{task.sample_tag}_test_set_sample.txt"


def _number(value: float) -> str:
    return repr(round(float(value), 3) + 0.0)  # + 0.0 turns -0.0 into 0.0


def _marker(task: Task) -> str:
    return str(int(task.invalid))


def label_lines(task: Task, labels: np.ndarray) -> list[str]:
    """The label file's lines (header first, no line ends) for ``labels``: (N, K) float, NaN invalid.

    K is ``task.label_width`` (a (N,) array is taken as one column). VA values must lie in [-1, 1],
    EXPR values be class indices, AU values 0 or 1.
    """
    if not task.is_frame:
        raise ValueError(f"task {task.name} has no per-frame label files")
    values = np.asarray(labels, np.float64).reshape(len(labels), -1)
    if values.shape[1] != task.label_width:
        raise ValueError(f"{task.name} labels need {task.label_width} columns, got {values.shape[1]}")
    valid = values[np.isfinite(values)]
    if task.kind == "regression":
        if valid.size and (valid.min() < task.low or valid.max() > task.high):
            raise ValueError(f"{task.name} labels must lie in [{task.low}, {task.high}]")
    else:
        top = len(task.outputs) - 1 if task.kind == "multiclass" else 1
        if valid.size and (np.any(valid != np.round(valid)) or valid.min() < 0 or valid.max() > top):
            raise ValueError(f"{task.name} labels must be integers in [0, {top}]")
    marker = _marker(task)
    cell = _number if task.kind == "regression" else (lambda v: str(int(v)))
    rows = [",".join(marker if not np.isfinite(v) else cell(v) for v in row) for row in values]
    return [",".join(task.header), *rows]


def write_lines(lines: Iterable[str], path: str | Path) -> None:
    """Write ``lines`` with ``\\n`` line ends and a final newline, atomically."""
    write_text("".join(f"{line}\n" for line in lines), path)


def write_labels(
    root: str | Path,
    task: Task,
    split: str,
    labels: Mapping[str, np.ndarray],
    *,
    annotations: str = ANNOTATIONS,
    folder: str | None = None,
) -> list[Path]:
    """One label file per track of ``labels`` ({track: (N, K) array}) under ``split``'s folder."""
    paths = []
    for track, values in labels.items():
        path = label_path(root, task, split, track, annotations=annotations, folder=folder)
        write_lines(label_lines(task, values), path)
        paths.append(path)
    return paths


def write_test_list(root: str | Path, task: Task, tracks: Sequence[str]) -> Path:
    """``names_of_videos_in_each_test_set/<task list>``: one track name per line, in the given order."""
    path = test_list_path(root, task)
    write_lines(tracks, path)
    return path


def sample_lines(task: Task, frames: Mapping[str, int]) -> list[str]:
    """The sample submission's lines: header ``image_location,<outputs>``, then ``<track>/%05d.jpg`` and a
    placeholder prediction (VA ``0.0,0.0``, EXPR ``0``, AU twelve ``0``) for frames 1..n of each track,
    tracks in the order of ``frames`` ({track: n})."""
    placeholder = {"regression": "0.0,0.0", "multiclass": "0", "multilabel": ",".join("0" * len(task.outputs))}
    value = placeholder[task.kind]
    lines = [",".join(("image_location", *task.outputs))]
    for track, n in frames.items():
        lines.extend(f"{track}/{k:05d}.jpg,{value}" for k in range(1, n + 1))
    return lines


def write_sample(root: str | Path, task: Task, frames: Mapping[str, int]) -> Path:
    """``prediction_files_format/CVPR_6th_ABAW_<tag>_test_set_sample.txt`` for ``frames`` ({track: n})."""
    path = sample_path(root, task)
    write_lines(sample_lines(task, frames), path)
    return path
