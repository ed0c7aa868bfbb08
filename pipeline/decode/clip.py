"""Decoding one clip: its sampled frames with face crops, its audio, and its status report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipeline.cli import describe
from pipeline.config import DecodeParams
from pipeline.decode.audio import choose_audio_stream, decode_audio, fit_to_duration, repair_nonfinite
from pipeline.decode.faces import DETECTOR, FaceDetector, FaceSource, crop_face, read_organiser_crop
from pipeline.decode.faults import Observations, audio_unusable, classify, needs_speech_check
from pipeline.decode.probe import Probe, StreamLog, audio_stream_times, probe
from pipeline.decode.speech import speech_found
from pipeline.decode.tracking import FaceTracker
from pipeline.decode.video import VideoSampler
from pipeline.decoded import (
    FRAME_ROW_GROUP,
    AudioInput,
    VisualInput,
    decode_crop,
    encode_crop,
    from_pcm16,
    to_pcm16,
)
from pipeline.levels import track_levels_dbfs, without_dc
from pipeline.runtime.devices import usable_cpus


@dataclass
class ClipReport:
    """The decode status of one clip (a row of the status table without ``split`` and ``path``)."""

    clip_id: str
    status: str
    message: str
    faults: list[str]
    duration_s: float | None
    n_frames: int
    n_face_frames: int
    face_fraction: float | None  # None when no frame was sampled
    has_video: bool
    has_audio: bool
    audio_dbfs: float | None  # RMS; None when no audio was decoded
    audio_active_dbfs: float | None = None  # loudest 10% of 50 ms frames (the silence rule's level)
    face_source: str = "detector"  # FaceSource.describe(): organiser crops or the detector
    # The timeline (``pipeline.timeline``): pts of every decoded frame, and the index
    # into it of each sample's source frame; empty when no frame decoded.
    frame_pts: list[float] = field(default_factory=list)
    sample_frame: list[int] = field(default_factory=list)


@dataclass
class FrameRows:
    """A batch of n consecutive sampled frames of one clip, as written to a frames shard."""

    clip_id: str
    frame_index: np.ndarray  # (n,) int32
    time_s: np.ndarray  # (n,) float64, frame_index / fps
    pts_s: np.ndarray  # (n,) float64, pts of the chosen source frame, clip timeline
    face_score: np.ndarray  # (n,) float32, 0 where no face
    face_box: np.ndarray  # (n, 4) float32 x0, y0, x1, y1 in decoded-frame pixels; NaN where no face
    crops: list[bytes | None]  # n entries: the stored crop (encode_crop: JPEG or raw RGB) or None


@dataclass
class DecodedClip:
    """One clip decoded in memory by :func:`decode_clip`: T sampled frames and the audio track."""

    report: ClipReport
    visual: VisualInput  # times (T,), crops T x ((S, S, 3) uint8 | None), face_scores (T,)
    audio: AudioInput  # samples (N,) float32 at sample_rate, or None
    pts_s: np.ndarray  # (T,) float64 pts of the source frame of each sample
    face_boxes: np.ndarray  # (T, 4) float32, NaN rows where no face


class _DecodeFailure(Exception):
    """Wraps an exception raised while decoding a clip (the cause), as opposed to writing it."""


class ClipDecoder:
    """Decodes clips one after another with one face detector; create one per process.

    ``threads``: decoder threads per file (0: all CPUs). Use as a context manager.
    """

    def __init__(self, params: DecodeParams, *, threads: int = 0) -> None:
        self.params = params
        self.threads = threads or usable_cpus()
        self.fps = Fraction(params.fps).limit_denominator(1_000_000)
        self._detector = FaceDetector(min_score=params.min_face_score)
        self._tracker = FaceTracker(self._detector, every=params.detect_every)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> ClipDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decode(
        self,
        path: str | Path,
        clip_id: str,
        on_frames: Callable[[FrameRows], None],
        faces: FaceSource = DETECTOR,
    ) -> tuple[ClipReport, AudioInput]:
        """Decode one clip; frames go to ``on_frames`` in batches of at most ``FRAME_ROW_GROUP``.

        ``faces``: where the crops come from (the detector by default, or the organisers' crops).

        Never raises for a bad file: the fault goes into the report. Exceptions raised by
        ``on_frames`` (a full disk) do propagate.
        """
        path = str(path)
        obs = Observations()
        self._tracker.reset()  # a face is followed within one clip only
        self._timeline: tuple[list[float], list[int]] = ([], [])
        samples: np.ndarray | None = None
        has_video = False
        found = self._probe(path, obs)
        if found is not None:
            if found.video_index is not None:
                origin, has_video = self._read_video(path, found, clip_id, on_frames, obs, faces)
            else:
                origin, obs.duration = found.audio_origin, found.audio_duration
            if found.audio_index is not None:
                samples = self._read_audio(path, found.audio_index, origin, obs)
        report, audio = self._report(clip_id, obs, samples, has_video)
        report.face_source = faces.describe()
        return report, audio

    def _probe(self, path: str, obs: Observations) -> Probe | None:
        """The file's streams, or None (with the reason in ``obs.errors``) when it has none to read."""
        if not os.path.isfile(path):
            obs.errors.append(f"file not found: {path}")
            return None
        try:
            found = probe(path)
        except Exception as error:  # noqa: BLE001 - any failure to open is this file's fault, never the run's
            obs.errors.append(f"cannot open: {describe(error)}")
            return None
        obs.has_video_stream = found.video_index is not None
        obs.has_audio_stream = found.audio_index is not None
        if found.video_index is None and found.audio_index is None:
            obs.errors.append("no audio or video stream")
            return None
        if len(found.audio_candidates) > 1:
            chosen, note = choose_audio_stream(
                path, found.audio_candidates, sample_rate=self.params.sample_rate, silence_dbfs=self.params.silence_dbfs
            )
            obs.notes.append(note)
            if chosen != found.audio_index:
                found.audio_index = chosen
                found.audio_origin, found.audio_duration = audio_stream_times(path, chosen)
        return found

    def _read_video(
        self,
        path: str,
        found: Probe,
        clip_id: str,
        on_frames: Callable[[FrameRows], None],
        obs: Observations,
        faces: FaceSource,
    ) -> tuple[Fraction | None, bool]:
        """Sample, detect and hand on the frames; -> (clip origin in file time, any frame decoded)."""
        try:
            sampler = VideoSampler(
                path,
                found.video_index,
                fps=self.fps,
                max_side=self.params.max_side,
                threads=self.threads,
                pictures=faces.crop_dir is None,  # organiser crops: no frame is converted to RGB
                header_times=found.video_times,
            )
        except Exception as error:  # noqa: BLE001 - the stream cannot even be demuxed
            obs.errors.append(f"video: {describe(error)}")
            return None, False
        if sampler.duration is None:
            obs.errors.append("video: no packet with a timestamp")
        else:
            obs.duration = sampler.duration
            try:
                for rows in self._frame_batches(clip_id, sampler, faces):
                    on_frames(rows)  # outside the except below: a writer error is not the clip's
                    obs.n_frames += len(rows.frame_index)
                    obs.n_face_frames += int(np.count_nonzero(rows.face_score > 0))
            except _DecodeFailure as failure:
                obs.errors.append(f"video: {describe(failure.__cause__)}")
        has_video = sampler.n_decoded > 0
        self._timeline = (sampler.frame_pts, sampler.sample_frame)
        if sampler.log.problem():
            obs.errors.append(sampler.log.problem())
        elif obs.duration is not None and not has_video:
            obs.errors.append("video: no decodable frame")
        if sampler.truncated:
            obs.errors.append(
                f"video truncated: frames end at {float(sampler.end):.3f} s, header says {float(obs.duration):.3f} s"
            )
        # Known only once the first frame is decoded, for some files.
        return sampler.origin, has_video

    def _read_audio(self, path: str, index: int, origin: Fraction | None, obs: Observations) -> np.ndarray | None:
        """The audio track on the clip's timeline, cut or padded to the clip's duration."""
        rate = self.params.sample_rate
        log = StreamLog("audio")
        samples = None
        try:
            samples = decode_audio(path, index, sample_rate=rate, origin=origin or Fraction(0), log=log)
        except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not stop the run
            obs.errors.append(f"audio: {describe(error)}")
        if log.problem():
            obs.errors.append(log.problem())
        elif samples is None:
            obs.errors.append("audio: no decodable frame")
        if samples is not None:
            if obs.duration is None:  # audio-only file without a header duration
                obs.duration = Fraction(len(samples), rate)
            samples = fit_to_duration(samples, obs.duration, rate)
            samples, obs.audio_nonfinite = repair_nonfinite(samples)
            obs.audio_samples = len(samples)
            if audio_unusable(obs.audio_nonfinite, obs.audio_samples):
                return None  # classify says why; the level of a mostly-NaN track would mean nothing
            obs.audio_dbfs, obs.audio_active_dbfs = track_levels_dbfs(samples, rate)
            if needs_speech_check(obs.audio_active_dbfs, self.params):
                obs.audio_speech = speech_found(without_dc(samples), rate, obs.audio_active_dbfs)
        return samples

    def _report(
        self, clip_id: str, obs: Observations, samples: np.ndarray | None, has_video: bool
    ) -> tuple[ClipReport, AudioInput]:
        verdict = classify(obs, self.params)
        duration = None if obs.duration is None else float(obs.duration)
        audio = AudioInput(
            clip_id=clip_id,
            samples=samples,
            sample_rate=self.params.sample_rate,
            duration_s=duration if duration is not None else 0.0,
            reason="" if samples is not None else "no decodable audio",
        )
        report = ClipReport(
            clip_id=clip_id,
            status=verdict.status,
            message=verdict.message,
            faults=verdict.faults,
            duration_s=duration,
            n_frames=obs.n_frames,
            n_face_frames=obs.n_face_frames,
            face_fraction=obs.n_face_frames / obs.n_frames if obs.n_frames else None,
            has_video=has_video,
            has_audio=samples is not None,
            audio_dbfs=obs.audio_dbfs,
            audio_active_dbfs=obs.audio_active_dbfs,
            frame_pts=list(self._timeline[0]),
            sample_frame=list(self._timeline[1][: obs.n_frames]),  # the samples actually written
        )
        return report, audio

    def _frame_batches(self, clip_id: str, sampler: VideoSampler, faces: FaceSource) -> Iterator[FrameRows]:
        """Sampled frames face-detected and cropped, in batches of ``FRAME_ROW_GROUP``.

        Decoder-side exceptions come out as :class:`_DecodeFailure` so the caller can tell them
        from exceptions of its own frame sink.
        """
        batch: list[tuple[int, float, float, tuple | None, np.ndarray | None]] = []
        samples = iter(sampler)
        current = (0.0, None, None)
        while True:
            try:
                item = next(samples, None)
                if item is None:
                    break
                index, pts, rgb, new = item
                if new:  # a frame held over several samples is detected once
                    current = self._face(rgb, sampler.sample_frame[-1], faces)
            except Exception as error:
                raise _DecodeFailure() from error
            batch.append((index, pts, *current))
            if len(batch) == FRAME_ROW_GROUP:
                yield self._rows(clip_id, batch)
                batch = []
        if batch:
            yield self._rows(clip_id, batch)

    def _face(self, rgb, frame: int, faces: FaceSource) -> tuple[float, tuple | None, bytes | None]:
        """(score, box, stored crop) of one decoded frame; (0, None, None) without a face. An
        organiser crop has score 1 and no box (its place in the frame is not published)."""
        params = self.params
        if faces.crop_dir is not None:
            crop = read_organiser_crop(faces, frame, size=params.crop_size)
            if crop is None:
                return 0.0, None, None
            return 1.0, None, encode_crop(crop, params.crop_format, params.crop_quality)
        face = self._tracker.find(rgb, side=faces.side)
        if face is None:
            return 0.0, None, None
        crop = crop_face(rgb, face.box, size=params.crop_size, margin=params.crop_margin)
        return face.score, face.box, encode_crop(crop, params.crop_format, params.crop_quality)

    def _rows(self, clip_id: str, batch: list) -> FrameRows:
        boxes = np.full((len(batch), 4), np.nan, np.float32)
        for row, (_, _, _, box, _) in enumerate(batch):
            if box is not None:
                boxes[row] = box
        index = np.array([b[0] for b in batch], np.int32)
        return FrameRows(
            clip_id=clip_id,
            frame_index=index,
            time_s=index / float(self.fps),
            pts_s=np.array([b[1] for b in batch], np.float64),
            face_score=np.array([b[2] for b in batch], np.float32),
            face_box=boxes,
            crops=[b[4] for b in batch],
        )


def decode_clip(path: str | Path, params: DecodeParams, *, clip_id: str | None = None, threads: int = 0) -> DecodedClip:
    """Decode one file in memory (frames, face crops, audio, status), as the decode stage does.

    For tools and tests; a 20-minute clip holds its 6,000 crops (460 MB at 160 px) in memory
    here, the stage streams them to disk and ``pipeline.predict`` to the visual extractor instead.
    Crops go through the stored codec (``decode.crop_format``) and the audio through 16-bit PCM, so
    they are exactly what the stage's readers return. ``clip_id`` defaults to the file stem.
    """
    clip_id = Path(path).stem if clip_id is None else clip_id
    batches: list[FrameRows] = []
    with ClipDecoder(params, threads=threads) as decoder:
        report, audio = decoder.decode(path, clip_id, batches.append)

    def joined(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches]) if batches else empty

    visual = VisualInput(
        clip_id=clip_id,
        times=joined("time_s", np.zeros(0, np.float64)),
        # Through the stored codec, as the stage's readers return them: predict sees what training saw.
        crops=[
            None if c is None else decode_crop(c, params.crop_format, params.crop_size)
            for b in batches
            for c in b.crops
        ],
        face_scores=joined("face_score", np.zeros(0, np.float32)),
    )
    if audio.samples is not None:  # through the stored 16-bit PCM too, as the stage's readers return it
        audio.samples = from_pcm16(to_pcm16(audio.samples))
    return DecodedClip(
        report=report,
        visual=visual,
        audio=audio,
        pts_s=joined("pts_s", np.zeros(0, np.float64)),
        face_boxes=joined("face_box", np.zeros((0, 4), np.float32)),
    )
