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
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from pipeline import runtime
from pipeline.asr import AsrClip, build_recognizer, recognizer_device, transcribe_clip
from pipeline.atomic import write_text
from pipeline.config import MODALITIES, Params, ParamsError, load_params
from pipeline.dataset import build_clip_table
from pipeline.decode import DecodedClip, decode_clip
from pipeline.emotions import EMOTIONS
from pipeline.features import ClipFeatures, TextInput, build_extractor, unavailable_reason
from pipeline.media_types import MEDIA_SUFFIXES
from pipeline.shards import ModalityInfo, extract_robustly
from pipeline.submission import submission_csv
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
        self.device = torch.device(runtime.torch_device())
        self.model, meta = load_model(model_dir, device=self.device)
        self.modalities = tuple(m for m in MODALITIES if m in meta["features"])
        self.info = {
            m: ModalityInfo(int(meta["features"][m]["dim"]), meta["features"][m]["model"]) for m in self.modalities
        }
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
            self.recognizer = build_recognizer(
                asr, device=recognizer_device(asr.backend), cpu_threads=torch.get_num_threads()
            )
        self.max_frames = {"visual": params.fusion.max_visual_frames, "audio": params.fusion.max_audio_frames}

    def predict_files(self, files: Sequence[Path], clip_ids: Sequence[str]) -> list[Prediction]:
        decoded = [decode_clip(f, self.params.decode, clip_id=c) for f, c in zip(files, clip_ids, strict=True)]
        records = {m: self._features(m, decoded) for m in self.modalities}
        ids = [clip.report.clip_id for clip in decoded]
        table = build_clip_table(
            clip_ids=ids, splits=["test"] * len(ids), labels=np.full((len(ids), len(EMOTIONS)), np.nan),
            records=records, info=self.info, max_frames=self.max_frames,
        )  # fmt: skip
        values = np.clip(predict(self.model, table, batch_size=32, device=self.device), 0.0, 1.0)
        out = []
        for i, (clip, path) in enumerate(zip(decoded, files, strict=True)):
            present = {m: bool(table.valid[m][i] is not None) if m in table.valid else False for m in MODALITIES}
            out.append(Prediction(ids[i], str(path), values[i], present, clip.report.status, clip.report.message))
        return out

    def _features(self, modality: str, decoded: Sequence[DecodedClip]) -> list[ClipFeatures]:
        """One record per clip: missing where the decode result says so (as in the feature stage)."""
        usable, blocked = [], []
        for clip in decoded:
            report = clip.report
            reason = unavailable_reason(
                modality, faults=report.faults, n_frames=report.n_frames, has_audio=report.has_audio
            )
            if reason:
                blocked.append(ClipFeatures.missing(report.clip_id, self.info[modality].dim, reason))
            elif modality == "visual":
                usable.append(clip.visual)
            elif modality == "audio":
                usable.append(clip.audio)
            else:
                usable.append(self._transcribe(clip))
        return blocked + (extract_robustly(self.extractors[modality], usable) if usable else [])

    def _transcribe(self, clip) -> TextInput:
        audio = clip.audio
        row = transcribe_clip(
            self.recognizer,
            AsrClip(
                clip.report.clip_id, audio.samples, audio.sample_rate, tuple(clip.report.faults), clip.report.message
            ),
        )
        return TextInput(row.clip_id, row.text if row.has_speech else None, "" if row.has_speech else row.status)


def predictions_csv(rows: Sequence[Prediction]) -> str:
    columns: dict[str, list] = {"clip_id": [r.clip_id for r in rows], "path": [r.path for r in rows]}
    columns.update({e: [float(r.values[k]) for r in rows] for k, e in enumerate(EMOTIONS)})
    columns.update({m: [r.present[m] for r in rows] for m in MODALITIES})
    columns.update(status=[r.status for r in rows], message=[r.message for r in rows])
    schema = {"clip_id": pl.String, "path": pl.String, **{e: pl.Float64 for e in EMOTIONS},
              **{m: pl.Boolean for m in MODALITIES}, "status": pl.String, "message": pl.String}  # fmt: skip
    return pl.DataFrame(columns, schema=schema).write_csv(float_precision=6)


def main(argv: list[str] | None = None) -> int:
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
    if args.submission:
        text = submission_csv([r.clip_id for r in rows], np.stack([r.values for r in rows]))
    else:
        text = predictions_csv(rows)
    write_text(text, args.out)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(f"predict: {len(rows)} files -> {args.out}; statuses {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
