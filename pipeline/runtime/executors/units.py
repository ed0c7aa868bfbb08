"""The crash-safe unit runner: a dead worker costs only its unit, and a clip that kills it twice only itself."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.runtime.executors import Executor
from pipeline.runtime.executors.base import WorkerDied


@dataclass(frozen=True)
class Unit:
    """One unit of work for :func:`run_units`: a shard of ``items`` (clip ids, by position).

    ``args(crashed, isolate)`` gives the unit function's arguments: it must skip the positions in
    ``crashed`` (reporting them as errors) and run those in ``isolate`` one at a time. While it
    works, the function writes to ``marker`` the positions it is on (space-separated) and removes
    the file when the unit is done.
    """

    key: Hashable
    name: str
    items: Sequence[str]
    args: Callable[[frozenset[int], frozenset[int]], tuple]
    marker: Path


def run_units(
    ex: Executor,
    fn: Callable[..., Any],
    units: Sequence[Unit],
    *,
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    log: Callable[[str], None] = print,
) -> Iterator[tuple[Hashable, Any]]:
    """``(unit.key, fn(*unit.args(...)))`` for every unit, as they complete, on ``workers`` workers.

    A worker that dies (a crash in native code, the OOM killer) takes only its unit with it (a
    local pool loses every unit in flight): each such unit is run again alone, after the others,
    on a fresh worker. Each time it dies alone, its marker names the culprit: a single position is
    skipped from then on (``crashed``), several (a batch in flight) are run one at a time (so the
    next death names one). One bad clip never stops the run; a death outside any item raises.
    """
    broken: list[Unit] = []
    with ex.pool(workers, initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(fn, *unit.args(frozenset(), frozenset())): unit for unit in units}
        for future in as_completed(futures):
            try:
                yield futures[future].key, future.result()
            except WorkerDied:
                broken.append(futures[future])
    order = {id(unit): k for k, unit in enumerate(units)}
    for unit in sorted(broken, key=lambda u: order[id(u)]):
        log(f"{unit.name}: its worker died; running it again alone")
        yield unit.key, _run_alone(ex, fn, unit, initializer, initargs, log)


def _run_alone(
    ex: Executor, fn: Callable[..., Any], unit: Unit, initializer: Callable[..., Any] | None, initargs: tuple, log
) -> Any:
    crashed: set[int] = set()
    isolate: set[int] = set()
    while True:
        unit.marker.unlink(missing_ok=True)
        try:
            with ex.pool(1, initializer=initializer, initargs=initargs) as pool:
                return pool.submit(fn, *unit.args(frozenset(crashed), frozenset(isolate))).result()
        except WorkerDied:
            if not unit.marker.is_file():
                raise  # died outside any item: nothing to blame, so stop
            positions = [int(p) for p in unit.marker.read_text().split()]
        if len(positions) == 1:
            crashed.add(positions[0])
            log(f"{unit.name}: the worker died on clip {unit.items[positions[0]]}; skipping it")
        else:
            isolate.update(positions)
            names = ", ".join(unit.items[p] for p in positions)
            log(f"{unit.name}: the worker died on a batch of clips ({names}); running them one at a time")
