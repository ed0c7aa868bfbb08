"""Predict the six intensities for new videos or audio files with a trained model.

    python -m pipeline.predict PATH [PATH ...] --out preds.csv [--model data/model]
                               [--params params.yaml] [--submission]

Each PATH is a media file or a folder (searched recursively for video/audio files). Every input
gets one row, whatever happens to it: the same decode, ASR and feature code as the pipeline
(settings from ``--params``, checked against the feature models the model was trained on), then
the model. Columns: ``clip_id``, ``path``, the six intensities clipped to [0, 1], ``visual`` /
``audio`` / ``text`` (was the modality present), ``status`` (the decode status, e.g. ``ok``,
``no_face``, ``corrupt``) and ``message`` (the reason or error). A clip missing a modality is
predicted from what is present, through the model's missing-modality tokens; a clip with nothing
usable (a corrupt file) gets the model's prediction with every modality absent, i.e. its learned
prior, and its status says why. ``--submission`` writes the ABAW submission format instead
(``Filename`` + six columns, 5-digit stems).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pipeline.asr import AsrClip, build_recognizer, default_device, transcribe_clip
from pipeline.atomic import write_text
from pipeline.config import Params, ParamsError, load_params
from pipeline.dataset import ModalityInfo, build_clip_table
from pipeline.decoding import decode_clip
from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.evaluation import submission_stem
from pipeline.features import MODALITIES, UNAVAILABLE, ClipFeatures, TextInput, build_extractor
from pipeline.manifest import MEDIA_SUFFIXES
from pipeline.shards import extract_robustly
from pipeline.training import load_model, predict

# Files decoded and transcribed before their features are extracted as one batch: bounds memory
# (decoded crops of a long clip are held until its batch is done) while batching the models.
CHUNK = 16


@dataclass
class Prediction:
    clip_id: str
    path: str
    values: np.ndarray  # (6,) in [0, 1]
    present: dict[str, bool]
    status: str
    message: str


def find_media(paths: Iterable[str]) -> list[Path]:
    """Media files named or found under folders, sorted within each folder; missing paths kept
    (they become ``corrupt`` rows rather than vanishing)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES))
        else:
            found.append(path)
    return found


def _unique_ids(files: Sequence[Path]) -> list[str]:
    """File stems, made unique with a numeric suffix where two files share a stem."""
    seen: dict[str, int] = {}
    ids = []
    for f in files:
        stem = f.stem
        seen[stem] = seen.get(stem, 0) + 1
        ids.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return ids


class Predictor:
    """Decode → ASR → features → model for batches of files, with the pipeline's own code."""

    def __init__(self, *, params: Params, model_dir: str | Path) -> None:
        self.params = params
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, meta = load_model(model_dir, device=self.device)
        self.modalities = tuple(m for m in MODALITIES if m in meta["features"])
        self.info = {m: ModalityInfo(dim=int(meta["features"][m]["dim"]), model=meta["features"][m]["model"]) for m in self.modalities}
        self.extractors = {
            m: build_extractor(m, getattr(params.features, m), device=self.device.type) for m in self.modalities
        }
        for m, extractor in self.extractors.items():
            if (extractor.model_name, extractor.dim) != (self.info[m].model, self.info[m].dim):
                raise ValueError(
                    f"{m}: params give {extractor.model_name} ({extractor.dim}-d) but the model was trained on "
                    f"{self.info[m].model} ({self.info[m].dim}-d); pass the params.yaml it was trained with"
                )
        self.recognizer = None
        if "text" in self.modalities:
            asr = params.asr
            self.recognizer = build_recognizer(asr, device=default_device(asr.backend), cpu_threads=torch.get_num_threads())
        self.max_frames = {"visual": params.fusion.max_visual_frames, "audio": params.fusion.max_audio_frames}

    def predict_files(self, files: Sequence[Path], clip_ids: Sequence[str]) -> list[Prediction]:
        decoded = [decode_clip(f, self.params.decode, clip_id=c) for f, c in zip(files, clip_ids)]
        records: dict[str, list[ClipFeatures]] = {m: [] for m in self.modalities}
        for m in self.modalities:
            usable, blocked = [], []
            for clip in decoded:
                reason = next((f for f in clip.report.faults if f in UNAVAILABLE[m]), "")
                if reason:
                    blocked.append(ClipFeatures.missing(clip.report.clip_id, self.info[m].dim, reason))
                elif m == "visual":
                    usable.append(clip.visual)
                elif m == "audio":
                    usable.append(clip.audio)
                else:
                    usable.append(self._transcribe(clip))
            records[m] = blocked + (extract_robustly(self.extractors[m], usable) if usable else [])
        ids = [clip.report.clip_id for clip in decoded]
        table = build_clip_table(
            clip_ids=ids, splits=["test"] * len(ids), labels=np.full((len(ids), len(EMOTIONS)), np.nan),
            records=records, info=self.info, max_frames=self.max_frames,
        )
        values = np.clip(predict(self.model, table, batch_size=32, device=self.device), 0.0, 1.0)
        out = []
        for i, (clip, path) in enumerate(zip(decoded, files)):
            present = {m: bool(table.valid[m][i] is not None) if m in table.valid else False for m in MODALITIES}
            out.append(Prediction(ids[i], str(path), values[i], present, clip.report.status, clip.report.message))
        return out

    def _transcribe(self, clip) -> TextInput:
        audio = clip.audio
        row = transcribe_clip(
            self.recognizer,
            AsrClip(clip.report.clip_id, audio.samples, audio.sample_rate, tuple(clip.report.faults), clip.report.message),
        )
        return TextInput(row.clip_id, row.text if row.has_speech else None, "" if row.has_speech else row.status)


def predictions_csv(rows: Sequence[Prediction]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip_id", "path", *EMOTIONS, *MODALITIES, "status", "message"])
    for r in rows:
        writer.writerow([r.clip_id, r.path, *(f"{v:.6f}" for v in r.values), *(str(r.present[m]).lower() for m in MODALITIES), r.status, r.message])
    return buffer.getvalue()


def submission_csv(rows: Sequence[Prediction]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_CSV_HEADER)
    for r in rows:
        writer.writerow([submission_stem(r.clip_id), *(f"{v:.6f}" for v in r.values)])
    return buffer.getvalue()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="video/audio files or folders")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--model", default="data/model", help="trained model folder (default: the one `make demo` trained)")
    parser.add_argument("--params", default="params.yaml", help="decode/ASR/feature settings (those the model was trained with)")
    parser.add_argument("--submission", action="store_true", help="write the ABAW submission format")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not (Path(args.model) / "model.safetensors").is_file():
        print(f"error: no trained model in {args.model} (run `make demo`, or pass --model)", file=sys.stderr)
        return 2
    files = find_media(args.paths)
    if not files:
        print("error: no video or audio files found", file=sys.stderr)
        return 2
    predictor = Predictor(params=params, model_dir=args.model)
    ids = _unique_ids(files)
    rows: list[Prediction] = []
    with tqdm(total=len(files), unit="file", desc="predict", file=sys.stderr) as bar:
        for start in range(0, len(files), CHUNK):
            rows.extend(predictor.predict_files(files[start : start + CHUNK], ids[start : start + CHUNK]))
            bar.update(min(CHUNK, len(files) - start))
    write_text(submission_csv(rows) if args.submission else predictions_csv(rows), args.out)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(f"predict: {len(rows)} files -> {args.out}; statuses {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
