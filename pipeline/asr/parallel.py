"""Transcribing many clips: the executor's workers each holding a model, in input order, crash-safe."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from pipeline.asr.recognizers import AsrModelError, Recognizer, build_recognizer, transcribe_clip
from pipeline.asr.transcripts import AsrClip, Transcript, skip_reason
from pipeline.config import AsrParams
from pipeline.runtime.executors import LOCAL, Executor, WorkerDied, WorkerPool

_worker_recognizer: Recognizer | None = None


def _init_worker(params: AsrParams, device: str, cpu_threads: int) -> None:
    global _worker_recognizer
    _worker_recognizer = build_recognizer(params, device=device, cpu_threads=cpu_threads)


def _work(clip: AsrClip) -> Transcript:
    return transcribe_clip(_worker_recognizer, clip)


def _ready() -> bool:
    return True


@dataclass
class _Pending:
    clip: AsrClip
    future: Future | None = None
    done: Transcript | None = None


def transcribe_clips(
    clips: Iterable[AsrClip], params: AsrParams, *, device: str, workers: int, executor: Executor = LOCAL
) -> Iterator[Transcript]:
    """One Transcript per clip, in input order, on the executor's workers.

    Locally, ``workers`` processes on CPU, each loading its own model with ``cpu_threads = cpus //
    workers`` (one process: in this one; also on a GPU); on Ray, one actor per ``runtime.asr_cpus``
    (and ``asr_gpus``) of the cluster. At most ``4 * workers`` clips are in flight, so memory
    stays bounded on any number of clips. When a worker dies (a crash inside native code), the
    clips in flight are retried one at a time on a fresh pool, so only the clip that kills a
    worker on its own gets status ``error``. Raises :class:`AsrModelError` when the model cannot
    be loaded.
    """
    workers = executor.size(workers)
    threads = executor.threads(workers)
    if not executor.remote and (workers == 1 or device != "cpu"):
        yield from _in_process(clips, params, device=device, threads=threads)
    else:
        yield from _pooled(clips, _Pools(params, device, threads, workers, executor))


def _in_process(clips: Iterable[AsrClip], params: AsrParams, *, device: str, threads: int) -> Iterator[Transcript]:
    try:
        recognizer = build_recognizer(params, device=device, cpu_threads=threads)
    except Exception as error:
        message = f"cannot load {params.backend} model {params.model!r}: {type(error).__name__}: {error}"
        raise AsrModelError(message) from error
    for clip in clips:
        yield transcribe_clip(recognizer, clip)


@dataclass
class _Pools:
    """Makes worker pools whose processes have loaded the model."""

    params: AsrParams
    device: str
    threads: int
    workers: int
    executor: Executor

    def new(self) -> WorkerPool:
        pool = self.executor.pool(
            self.workers, initializer=_init_worker, initargs=(self.params, self.device, self.threads)
        )
        try:
            pool.submit(_ready).result()
        except WorkerDied:
            pool.shutdown(cancel_futures=True)
            # A model that cannot load is a configuration error, not a bad clip: stop here.
            raise AsrModelError(
                f"cannot load {self.params.backend} model {self.params.model!r} (worker traceback above)"
            ) from None
        return pool


def _pooled(clips: Iterable[AsrClip], pools: _Pools) -> Iterator[Transcript]:
    pool = pools.new()
    queue: deque[_Pending] = deque()
    source = iter(clips)
    try:
        while True:
            while len(queue) < 4 * pools.workers and (clip := next(source, None)) is not None:
                skipped = skip_reason(clip)
                queue.append(_Pending(clip, None if skipped else pool.submit(_work, clip), skipped))
            if not queue:
                return
            head = queue[0]
            if head.done is None:
                try:
                    head.done = head.future.result()
                except WorkerDied:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = _retry_alone([p for p in queue if p.done is None], pools)
            yield queue.popleft().done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _retry_alone(pending: list[_Pending], pools: _Pools) -> WorkerPool:
    """Run each clip that was in flight when a worker died on its own; returns the live pool."""
    pool = pools.new()
    for item in pending:
        try:
            item.done = pool.submit(_work, item.clip).result()
        except WorkerDied as error:
            message = f"ASR worker process died on this clip: {error}"
            item.done = Transcript.skipped(item.clip.clip_id, "error", message)
            pool.shutdown(wait=False, cancel_futures=True)
            pool = pools.new()
    return pool
