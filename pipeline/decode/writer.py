"""The decode stage's runner: clips in shards on the executor's workers, streamed to Parquet, crash-safe."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.config import DecodeParams
from pipeline.decode.clip import ClipDecoder, ClipReport, FrameRows
from pipeline.decode.faces import DETECTOR, FaceSource
from pipeline.decoded import (
    AUDIO_SCHEMA,
    FRAME_ROW_GROUP,
    STATUS_SCHEMA,
    AudioInput,
    audio_path,
    frames_path,
    frames_schema,
    to_pcm16,
)
from pipeline.runtime.executors import LOCAL, Executor
from pipeline.runtime.executors.units import Unit, run_units
from pipeline.timeline import TIMELINE_SCHEMA

# Audio rows are buffered up to this many samples (64 MB as float32 in memory) before a row group is written.
AUDIO_ROW_GROUP_SAMPLES = 16_000_000


class ClipJob(NamedTuple):
    """One manifest row to decode; a plain (clip_id, path) pair means the detector finds the face."""

    clip_id: str
    path: str
    faces: FaceSource = DETECTOR


def clip_jobs(manifest: pa.Table) -> list[ClipJob]:
    """The manifest's rows as jobs; a frame-level release's ``crop_dir`` (organiser crops) and
    ``side`` (the _left/_right track of a shared video) choose each track's face source."""
    columns = set(manifest.column_names)
    n = manifest.num_rows
    crops = manifest.column("crop_dir").to_pylist() if "crop_dir" in columns else [None] * n
    sides = manifest.column("side").to_pylist() if "side" in columns else [None] * n
    return [
        ClipJob(clip_id, path, FaceSource(crop_dir=crop, side=side or None))
        for clip_id, path, crop, side in zip(
            manifest.column("clip_id").to_pylist(), manifest.column("path").to_pylist(), crops, sides, strict=True
        )
    ]


def frame_table(rows: FrameRows, schema: pa.Schema) -> pa.Table:
    """The frames-shard rows of one batch of sampled frames."""
    boxes = pa.FixedSizeListArray.from_arrays(pa.array(rows.face_box.reshape(-1), pa.float32()), 4)
    crops = pa.array(rows.crops, pa.binary())
    n = len(rows.frame_index)
    return pa.Table.from_arrays(
        [
            pa.array([rows.clip_id] * n, pa.string()),
            pa.array(rows.frame_index, pa.int32()),
            pa.array(rows.time_s, pa.float64()),
            pa.array(rows.pts_s, pa.float64()),
            pa.array(rows.face_score, pa.float32()),
            boxes,
            crops,
        ],
        schema=schema,
    )


class _ShardWriter:
    """Streams one shard's frames and audio into two Parquet files, each renamed into place on close."""

    def __init__(self, out_dir: Path, shard: int, crop_size: int, crop_format: str) -> None:
        self._stack = contextlib.ExitStack()
        self._frames_schema = frames_schema(crop_size, crop_format)
        frames_tmp = self._stack.enter_context(atomic_path(frames_path(out_dir, shard), ".parquet"))
        audio_tmp = self._stack.enter_context(atomic_path(audio_path(out_dir, shard), ".parquet"))
        # zstd: raw crops shrink by about a fifth; JPEG crops pass through it almost untouched.
        self._frames = pq.ParquetWriter(frames_tmp, self._frames_schema, compression="zstd")
        self._audio = pq.ParquetWriter(audio_tmp, AUDIO_SCHEMA, compression="zstd")
        self._frame_buffer: list[FrameRows] = []
        self._frame_rows = 0
        self._audio_buffer: list[tuple[AudioInput, float | None]] = []
        self._audio_samples = 0

    def add_frames(self, rows: FrameRows) -> None:
        self._frame_buffer.append(rows)
        self._frame_rows += len(rows.frame_index)
        if self._frame_rows >= FRAME_ROW_GROUP:
            self._flush_frames()

    def add_audio(self, audio: AudioInput, duration_s: float | None) -> None:
        """Buffer one clip's audio row; ``duration_s`` None (unknown) is written as null."""
        self._audio_buffer.append((audio, duration_s))
        self._audio_samples += 0 if audio.samples is None else len(audio.samples)
        if self._audio_samples >= AUDIO_ROW_GROUP_SAMPLES:
            self._flush_audio()

    def _flush_frames(self) -> None:
        if self._frame_buffer:
            tables = [frame_table(rows, self._frames_schema) for rows in self._frame_buffer]
            self._frames.write_table(pa.concat_tables(tables), row_group_size=self._frame_rows)
        self._frame_buffer, self._frame_rows = [], 0

    def _flush_audio(self) -> None:
        if self._audio_buffer:
            rows = [audio for audio, _ in self._audio_buffer]
            lengths = [0 if a.samples is None else len(a.samples) for a in rows]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            values = [a.samples for a in rows if a.samples is not None]
            flat = to_pcm16(np.concatenate(values)) if values else np.zeros(0, np.int16)
            samples = pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32()),
                pa.array(flat, pa.int16()),
                mask=pa.array([a.samples is None for a in rows]),
            )
            table = pa.Table.from_arrays(
                [
                    pa.array([a.clip_id for a in rows], pa.string()),
                    pa.array([a.sample_rate for a in rows], pa.int32()),
                    samples,
                    pa.array([d for _, d in self._audio_buffer], pa.float64()),
                ],
                schema=AUDIO_SCHEMA,
            )
            self._audio.write_table(table, row_group_size=len(self._audio_buffer))
        self._audio_buffer, self._audio_samples = [], 0

    def close(self) -> None:
        """Write what is buffered and rename both files into place."""
        self._flush_frames()
        self._flush_audio()
        self._frames.close()
        self._audio.close()
        self._stack.close()

    def abort(self) -> None:
        """Call from an ``except`` block: drop both temporary files, leave the final names untouched."""
        with contextlib.suppress(Exception):
            self._frames.close()
            self._audio.close()
        self._stack.__exit__(*sys.exc_info())


def _crashed(clip_id: str, sample_rate: int) -> tuple[ClipReport, AudioInput]:
    """Report and (empty) audio row of a clip whose decoder process died on it twice."""
    message = "the decoder process died on this file twice (a crash in native code or the OOM killer): skipped"
    report = ClipReport(
        clip_id=clip_id,
        status="error",
        message=message,
        faults=["error"],
        duration_s=None,
        n_frames=0,
        n_face_frames=0,
        face_fraction=None,
        has_video=False,
        has_audio=False,
        audio_dbfs=None,
    )
    return report, AudioInput(clip_id=clip_id, samples=None, sample_rate=sample_rate, duration_s=0.0, reason=message)


def progress_path(out_dir: str | Path, shard: int) -> Path:
    """Scratch file holding the index (in its shard) of the clip a worker is decoding."""
    return Path(out_dir) / f".progress-{shard:05d}"


def decode_shard(
    clips: Sequence[tuple[str, str] | ClipJob],
    out_dir: str | Path,
    shard: int,
    params: DecodeParams,
    *,
    threads: int = 1,
    crashed: frozenset[int] = frozenset(),
) -> list[ClipReport]:
    """Decode ``clips`` (ClipJob or (clip_id, path) pairs) into ``frames-<shard>`` and ``audio-<shard>``.

    Rows follow ``clips`` order; every clip gets an audio row and a report, bad files included.
    Clips whose position is in ``crashed`` are not opened: they killed an earlier attempt. Before
    each clip, its position is written to :func:`progress_path` so a crash can be traced to it.
    """
    writer = _ShardWriter(Path(out_dir), shard, params.crop_size, params.crop_format)
    marker = progress_path(out_dir, shard)
    reports = []
    try:
        with ClipDecoder(params, threads=threads) as decoder:
            for position, clip in enumerate(clips):
                clip_id, path, faces = ClipJob(*clip)
                if position in crashed:
                    report, audio = _crashed(clip_id, params.sample_rate)
                else:
                    marker.write_text(str(position))
                    report, audio = decoder.decode(path, clip_id, writer.add_frames, faces)
                writer.add_audio(audio, report.duration_s)
                reports.append(report)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    marker.unlink(missing_ok=True)
    return reports


def _worker_init() -> None:
    # Decoder threads are set per file; keep OpenCV (only the crop resize) from adding its own pool.
    import cv2

    cv2.setNumThreads(1)


def _shard_task(args: tuple) -> tuple[int, list[ClipReport], float]:
    clips, out_dir, shard, params, threads, crashed = args
    start = time.perf_counter()
    reports = decode_shard(clips, out_dir, shard, params, threads=threads, crashed=crashed)
    return shard, reports, time.perf_counter() - start


def decode_manifest(
    clips: Sequence[tuple[str, str] | ClipJob],
    out_dir: str | Path,
    params: DecodeParams,
    *,
    log: Callable[[str], None] = print,
    executor: Executor = LOCAL,
) -> list[ClipReport]:
    """Decode every ClipJob (or (clip_id, path) pair) into shards under ``out_dir``; one report per clip, in order.

    Shard k holds clips [k * clips_per_shard, (k + 1) * clips_per_shard). Shards run on the
    executor's workers: locally ``workers`` processes with CPUs // workers decoder threads per
    file, on Ray one actor per ``runtime.decode_cpus`` of the cluster. A worker that dies (a crash
    in a native decoder, the OOM killer) takes only its shard with it: the shard is run again
    alone, and each time it dies again the clip it was on gets status ``error`` and is skipped
    (``pipeline.runtime.run_units``), so one bad file never stops the run. Shard files of an
    earlier run are removed first.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("frames-*.parquet"), *out_dir.glob("audio-*.parquet"), *_scratch_files(out_dir)]:
        stale.unlink()
    size = params.clips_per_shard
    shards = [list(clips[k : k + size]) for k in range(0, len(clips), size)]
    workers = max(1, min(executor.size(params.workers), len(shards)))
    threads = executor.threads(workers)
    units = [
        Unit(
            key=k,
            name=f"decode: shard {k + 1}",
            items=[clip[0] for clip in chunk],
            args=lambda crashed, _isolate, k=k, chunk=chunk: ((chunk, out_dir, k, params, threads, crashed),),
            marker=progress_path(out_dir, k),
        )
        for k, chunk in enumerate(shards)
    ]
    results: dict[int, list[ClipReport]] = {}
    for shard, (_, reports, seconds) in run_units(
        executor, _shard_task, units, workers=workers, initializer=_worker_init, log=log
    ):
        results[shard] = reports
        bad = sum(r.status != "ok" for r in reports)
        log(f"decode: shard {shard + 1}/{len(shards)}: {len(reports)} clips, {bad} not ok, {seconds:.1f} s")
    for leftover in _scratch_files(out_dir):  # a dead worker leaves its temporary shard files behind
        leftover.unlink()
    return [report for shard in range(len(shards)) for report in results[shard]]


def _scratch_files(out_dir: Path) -> list[Path]:
    """Progress markers and the temporary files of unfinished shard writes (atomic_path's names)."""
    return [*out_dir.glob(".progress-*"), *out_dir.glob(".frames-*.tmp"), *out_dir.glob(".audio-*.tmp")]


def timeline_table(reports: Sequence[ClipReport], fps: float) -> pa.Table:
    """The timeline table (``TIMELINE_SCHEMA``): every decoded frame's pts and each sample's frame, per clip."""
    columns = {
        "clip_id": [r.clip_id for r in reports],
        "fps": [float(fps)] * len(reports),
        "frame_pts": [r.frame_pts for r in reports],
        "sample_frame": [r.sample_frame for r in reports],
    }
    return pa.Table.from_pydict(columns, schema=TIMELINE_SCHEMA)


def status_table(reports: Sequence[ClipReport], splits: Sequence[str], paths: Sequence[str]) -> pa.Table:
    """The status table (``STATUS_SCHEMA``): one row per report, with the manifest's split and path."""
    columns = {name: [] for name in STATUS_SCHEMA.names}
    for report, split, path in zip(reports, splits, paths, strict=True):
        row = dict(report.__dict__, split=split, path=path)
        for name in STATUS_SCHEMA.names:
            columns[name].append(row[name])
    return pa.Table.from_pydict(columns, schema=STATUS_SCHEMA)
