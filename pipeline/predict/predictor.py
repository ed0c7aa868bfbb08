"""Decode → ASR → features → model for one file at a time, with the pipeline's own code, streamed.

Memory: one file's decoded media at most. Its sampled frames go to the visual extractor batch by
batch as they are decoded (:class:`VisualFeatureSink`, ``FRAME_ROW_GROUP`` frames at a time), so
only their (T, D) features are kept, never the face crops of a whole clip; the audio track is
decoded whole (3.8 MB per minute at 16 kHz) and freed when the file is done; on CPU the audio
encoder takes one 30 s window at a time. Each modality is missing where the decode result says
so, by the rule the feature stage uses (``pipeline.features.unavailable_reason``); the model's
inputs are built by ``pipeline.train.dataset.build_clip_table`` with the frame budgets the model was
trained with (long clips pooled over their whole length).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from pipeline.asr import AsrClip, build_recognizer, recognizer_device, transcribe_clip
from pipeline.cli import UsageError, describe
from pipeline.config import MODALITIES, DecodeParams, Params
from pipeline.decode import ClipDecoder, ClipReport, FrameRows
from pipeline.decoded import AudioInput, VisualInput, decode_crop
from pipeline.emotions import EMOTIONS
from pipeline.features import ClipFeatures, TextInput, build_extractor, unavailable_reason
from pipeline.features.hume import SOURCES
from pipeline.features.runner import extract_robustly
from pipeline.features.shards import ModalityInfo
from pipeline.features.visual import NO_FACE, NO_FRAMES
from pipeline.runtime.devices import torch_device
from pipeline.tasks import get_task
from pipeline.train.dataset import build_clip_table
from pipeline.train.inference import predict
from pipeline.train.models import load_model
from pipeline.whisper import encoder_states


@dataclass
class Prediction:
    clip_id: str
    path: str
    values: np.ndarray  # (6,) in [0, 1]
    present: dict[str, bool]
    status: str
    message: str


class VisualFeatureSink:
    """Frame sink for ``ClipDecoder.decode``: runs the visual extractor on each batch of sampled
    frames as it arrives and keeps only (n, D) features and the valid mask. ``extractor`` None
    (a model without the visual modality) drops the frames."""

    def __init__(self, extractor, dim: int, params: DecodeParams) -> None:
        self.extractor, self.dim, self.params = extractor, dim, params
        self.values: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def __call__(self, rows: FrameRows) -> None:
        if self.extractor is None:
            return
        n = len(rows.frame_index)
        size, fmt = self.params.crop_size, self.params.crop_format
        # Through the stored codec, as the stage's readers return them: predict sees what training saw.
        crops = [None if c is None else decode_crop(c, fmt, size) for c in rows.crops]
        (record,) = extract_robustly(self.extractor, [VisualInput(rows.clip_id, rows.time_s, crops, rows.face_score)])
        if record.available:  # else no face in this batch, or the extractor failed on it
            self.values.append(record.values)
            self.valid.append(record.valid)
        else:
            self.values.append(np.zeros((n, self.dim), np.float32))
            self.valid.append(np.zeros(n, bool))
        self.times.append(np.asarray(rows.time_s, np.float32))

    def record(self, clip_id: str) -> ClipFeatures:
        """The clip's features, as the extractor gives them for a whole clip."""
        valid = np.concatenate(self.valid) if self.valid else np.zeros(0, bool)
        if not valid.any():
            return ClipFeatures.missing(clip_id, self.dim, NO_FACE if len(valid) else NO_FRAMES)
        return ClipFeatures(clip_id, np.concatenate(self.values), np.concatenate(self.times), valid, available=True)


class Predictor:
    """The trained model and the extractors it was trained on; :meth:`predict_file` per input."""

    def __init__(self, *, params: Params, model_dir: str | Path) -> None:
        self.params = params
        self.device = torch.device(torch_device())
        self.model, meta = load_model(model_dir, device=self.device)
        self.meta = meta
        self.task = get_task(meta.get("task", "emi"))
        self.modalities = tuple(m for m in MODALITIES if m in meta["features"])
        self.info = {
            m: ModalityInfo(int(meta["features"][m]["dim"]), meta["features"][m]["model"]) for m in self.modalities
        }
        organiser = [f"{m}: {self.info[m].model}" for m in self.modalities if self.info[m].model in SOURCES]
        if organiser:
            raise UsageError(
                f"the model was trained on the Hume-Vidmimic2 organisers' pre-extracted features "
                f"({', '.join(organiser)}), which exist only for the release's own clips; predicting a new "
                "file needs features the pipeline extracts itself (docs/hume-features.md). The release's "
                "test clips are predicted by `dvc repro` (eval/submission.csv)."
            )
        self.extractors = {m: build_extractor(m, self._section(m), device=self.device.type) for m in self.modalities}
        for m, extractor in self.extractors.items():
            if (extractor.model_name, extractor.dim) != (self.info[m].model, self.info[m].dim):
                raise UsageError(
                    f"{m}: params give {extractor.model_name} ({extractor.dim}-d) but the model was trained on "
                    f"{self.info[m].model} ({self.info[m].dim}-d); pass the params.yaml it was trained with"
                )
        self.recognizer = None
        self._kept: tuple[str | None, np.ndarray | None] = (None, None)  # (clip id, encoder states ASR kept)
        if "text" in self.modalities:
            asr = params.asr
            self.recognizer = build_recognizer(
                asr, device=recognizer_device(asr.backend), cpu_threads=torch.get_num_threads()
            )
        # The frame budgets the model was trained with (its config), else those of the params.
        fusion = meta.get("fusion") or params.fusion.model_dump()
        self.max_frames = {"visual": fusion["max_visual_frames"], "audio": fusion["max_audio_frames"]}
        self.decoder = ClipDecoder(params.decode)

    def _section(self, modality: str):
        """The modality's feature params; on CPU the audio encoder takes one window per call: its
        attention holds about 100 MB per 30 s window in flight (780 MB at the default 8), batching
        the windows of one file buys no speed on a CPU, and the values are the same."""
        section = getattr(self.params.features, modality)
        if modality == "audio" and self.device.type == "cpu":
            section = section.model_copy(update={"batch_size": 1})
        return section

    def close(self) -> None:
        self.decoder.close()

    def features_of(self, path: Path, clip_id: str) -> tuple[ClipReport, dict[str, ClipFeatures]]:
        """Decode one file and extract the model's modalities, as the pipeline's stages do (raises on
        a failure of the extractors themselves; a bad file is the report's status)."""
        sink = VisualFeatureSink(
            self.extractors.get("visual"),
            self.info["visual"].dim if "visual" in self.info else 0,
            self.params.decode,
        )
        report, audio = self.decoder.decode(path, clip_id, sink)
        # Text first: ASR may keep the clip's encoder states for the audio features, as in the pipeline.
        done = {m: self._record(m, report, audio, sink) for m in sorted(self.modalities, key=lambda m: m != "text")}
        return report, {m: done[m] for m in self.modalities}

    def predict_file(self, path: Path, clip_id: str) -> Prediction:
        """Never raises for a bad file: whatever goes wrong is the row's status and message."""
        try:
            report, records = self.features_of(path, clip_id)
        except Exception as error:  # noqa: BLE001 - one file's failure is its row, never the run's end
            print(f"warning: {path}: {describe(error)}", file=sys.stderr)
            return self.unreadable(path, clip_id, f"error while predicting: {describe(error)}")
        values, present = self._model(clip_id, records)
        return Prediction(clip_id, str(path), values, present, report.status, report.message)

    def unreadable(self, path: Path, clip_id: str, problem: str) -> Prediction:
        """The row of an input with nothing to decode: every modality absent (the learned prior)."""
        return Prediction(clip_id, str(path), self._prior, dict.fromkeys(MODALITIES, False), "corrupt", problem)

    @cached_property
    def _prior(self) -> np.ndarray:
        missing = {m: ClipFeatures.missing("prior", self.info[m].dim, "absent") for m in self.modalities}
        return self._model("prior", missing)[0]

    def _record(self, modality: str, report: ClipReport, audio: AudioInput, sink: VisualFeatureSink) -> ClipFeatures:
        reason = unavailable_reason(
            modality, faults=report.faults, n_frames=report.n_frames, has_audio=report.has_audio
        )
        if reason:
            return ClipFeatures.missing(report.clip_id, self.info[modality].dim, reason)
        if modality == "visual":
            return sink.record(report.clip_id)
        item = self._with_kept_states(audio) if modality == "audio" else self._transcribe(report, audio)
        return extract_robustly(self.extractors[modality], [item])[0]

    def _transcribe(self, report: ClipReport, audio: AudioInput) -> TextInput:
        clip = AsrClip(report.clip_id, audio.samples, audio.sample_rate, tuple(report.faults), report.message)
        row = transcribe_clip(self.recognizer, clip)
        self._kept = (row.clip_id, row.encoder_states)
        return TextInput(row.clip_id, row.text if row.has_speech else None, "" if row.has_speech else row.status)

    def _with_kept_states(self, audio: AudioInput) -> AudioInput:
        """The audio with the encoder states ASR kept for this clip (pipeline.whisper.encoder_states), if any."""
        clip_id, states = self._kept
        if states is None or clip_id != audio.clip_id:
            return audio
        asr = self.params.asr
        model = encoder_states.model_name(asr.model, asr.compute_type)
        return dataclasses.replace(audio, encoder_states=encoder_states.as_stored(states), encoder_model=model)

    def _model(self, clip_id: str, records: dict[str, ClipFeatures]) -> tuple[np.ndarray, dict[str, bool]]:
        """(6,) values clipped to [0, 1] and which modalities the model saw."""
        table = build_clip_table(
            clip_ids=[clip_id], splits=["test"], labels=np.full((1, len(EMOTIONS)), np.nan),
            records={m: [r] for m, r in records.items()}, info=self.info, max_frames=self.max_frames,
        )  # fmt: skip
        values = np.clip(predict(self.model, table, batch_size=1, device=self.device)[0], 0.0, 1.0)
        present = {m: m in table.values and table.values[m][0] is not None for m in MODALITIES}
        return values, present
