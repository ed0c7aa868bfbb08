"""Predict with a trained model on new videos or audio files: EMI's six intensities per file, or a
frame-level task's predictions (valence-arousal, expression, action units) per video frame.

    python -m pipeline.predict PATH [PATH ...] --out preds.csv [--model data/model]
                               [--params params.yaml] [--submission] [--plots DIR]

Each PATH is a media file or a folder (searched recursively; ``pipeline.predict.inputs`` says
which entries count). One row per input, whatever happens to it: every named file, every media
entry of a named folder, and every named path that cannot be read (missing, a folder with no
media, a broken link: status ``corrupt``, the reason as message); what a folder search skips
(hidden files, files that are not media) is counted in one line on stderr. Each file goes through
the same decode, ASR and feature code as the pipeline (settings from ``--params``, checked against
the feature models the model was trained on) and the model, one file at a time
(``pipeline.predict.predictor``: memory holds one file's media). Columns: ``clip_id``, ``path``, the six
intensities clipped to [0, 1], ``visual`` / ``audio`` / ``text`` (was the modality present),
``status`` (the decode status: ``ok``, ``partial``, ``no_face``, ``corrupt``...) and ``message``.
A clip missing a modality is predicted from what is present, through the model's missing-modality
tokens; a clip with nothing usable (``corrupt``) gets the model's prediction with every modality
absent, its learned prior. ``--submission`` writes the ABAW submission format instead
(``Filename`` + six columns, 5-digit stems) and refuses two files with the same stem.
``--plots DIR`` also draws each row as ``DIR/<clip_id>.png`` (``pipeline.predict.pictures``): the six
intensities as bars, the modalities present, the status and message.

A frame-level model (its config.json names the task) writes one row per decoded frame of each input
instead, and one picture of its predictions over time (``pipeline.predict.frames``); the
submission layout is then ``<clip_id>/<frame>.jpg`` rows with the task's header.

``--out`` (and ``--plots``) are checked before any work (not a folder, its folder exists or can be made, writable)
and written atomically. A user error (missing params or model, a bad ``--out``, duplicate
submission stems) is one line ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from pipeline.atomic import write_text
from pipeline.cli import UsageError, user_errors
from pipeline.config import MODALITIES, load_params
from pipeline.emotions import EMOTIONS
from pipeline.evaluate.submission import submission_csv, submission_stem
from pipeline.predict.frames import frames_csv, frames_submission, predict_frames, unreadable_frames
from pipeline.predict.inputs import Input, resolve_inputs
from pipeline.predict.pictures import check_folder, draw, draw_frames
from pipeline.predict.predictor import Prediction, Predictor


def check_out(out: str | Path) -> Path:
    """``out`` made ready for writing, before any work: not a folder, its folder exists (made
    when missing) and takes a new file. Raises :class:`UsageError` naming the problem."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name, e.g. {out / 'predictions.csv'}")
    if out.exists() and not out.is_file():
        raise UsageError(f"--out {out} exists and is not a regular file")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {out}: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out.name}.", suffix=".check"):
            pass
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write in {folder}: {error.strerror or error}") from None
    return out


def clip_ids(inputs: Sequence[Input], *, submission: bool) -> list[str]:
    """File stems, made unique with a numeric suffix where two inputs share one; for a submission
    the 5-digit stems themselves, refusing two inputs that give the same one."""
    if submission:
        stems = [submission_stem(i.path.stem) for i in inputs]
        first: dict[str, Path] = {}
        for stem, item in zip(stems, inputs, strict=True):
            if stem in first:
                raise UsageError(
                    f"--submission: {first[stem]} and {item.path} would both be Filename {stem}; "
                    "rename one or predict them in separate runs"
                )
            first[stem] = item.path
        return stems
    seen: Counter[str] = Counter()
    ids = []
    for item in inputs:
        seen[item.path.stem] += 1
        ids.append(item.path.stem if seen[item.path.stem] == 1 else f"{item.path.stem}_{seen[item.path.stem]}")
    return ids


def predictions_csv(rows: Sequence[Prediction]) -> str:
    columns: dict[str, list] = {"clip_id": [r.clip_id for r in rows], "path": [r.path for r in rows]}
    columns.update({e: [float(r.values[k]) for r in rows] for k, e in enumerate(EMOTIONS)})
    columns.update({m: [r.present[m] for r in rows] for m in MODALITIES})
    columns.update(status=[r.status for r in rows], message=[r.message for r in rows])
    schema = {"clip_id": pl.String, "path": pl.String, **{e: pl.Float64 for e in EMOTIONS},
              **{m: pl.Boolean for m in MODALITIES}, "status": pl.String, "message": pl.String}  # fmt: skip
    return pl.DataFrame(columns, schema=schema).write_csv(float_precision=6)


def _predict_one(predictor: Predictor, item, clip_id: str):
    """The input's row (clip-level) or rows (frame-level), an unreadable input's too."""
    if predictor.task.is_frame:
        if item.problem:
            return unreadable_frames(predictor, item.path, clip_id, item.problem)
        return predict_frames(predictor, item.path, clip_id)
    if item.problem:
        return predictor.unreadable(item.path, clip_id, item.problem)
    return predictor.predict_file(item.path, clip_id)


def _text(task, rows: list, *, submission: bool) -> str:
    if task.is_frame:
        return frames_submission(task, rows) if submission else frames_csv(task, rows)
    if submission:
        return submission_csv([r.clip_id for r in rows], np.stack([r.values for r in rows]))
    return predictions_csv(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="video/audio files or folders")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument(
        "--model", default="data/model", help="trained model folder (default: the one `make demo` trained)"
    )
    parser.add_argument(
        "--params", default="params.yaml", help="decode/ASR/feature settings (those the model was trained with)"
    )
    parser.add_argument("--submission", action="store_true", help="write the ABAW submission format")
    parser.add_argument("--plots", metavar="DIR", help="also draw one PNG per input in DIR (bars, modalities, status)")
    return parser


@user_errors()
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = load_params(args.params)
    if not (Path(args.model) / "model.safetensors").is_file():
        raise UsageError(f"no trained model in {args.model} (run `make demo`, or pass --model)")
    out = check_out(args.out)
    pictures = check_folder(args.plots) if args.plots else None
    resolved = resolve_inputs(args.paths)
    print(resolved.summary(), file=sys.stderr)
    ids = clip_ids(resolved.inputs, submission=args.submission)
    predictor = Predictor(params=params, model_dir=args.model)
    task = predictor.task
    rows: list = []
    drawn = 0
    try:
        for item, clip_id in tqdm(
            list(zip(resolved.inputs, ids, strict=True)), unit="file", desc="predict", file=sys.stderr
        ):
            rows.append(_predict_one(predictor, item, clip_id))
            if pictures is not None:
                done = draw_frames(rows[-1], pictures, task) if task.is_frame else draw(rows[-1], pictures)
                drawn += done is not None
    finally:
        predictor.close()
    write_text(_text(task, rows, submission=args.submission), out)
    counts = Counter(r.status for r in rows)
    frames = f" ({sum(max(len(r.times), 1) for r in rows)} frame rows)" if task.is_frame else ""
    print(f"predict: {len(rows)} inputs{frames} -> {os.fspath(out)}; statuses {dict(sorted(counts.items()))}")
    if pictures is not None:
        print(f"predict: {drawn} of {len(rows)} pictures -> {os.fspath(pictures)}")
    return 0
