"""Stage decode: frames at decode.fps by timestamp, face crops, 16 kHz mono audio, per-clip status.

Writes ``<out>/frames-NNNNN.parquet`` and ``<out>/audio-NNNNN.parquet`` (one pair per shard of
``decode.clips_per_shard`` manifest rows), the status table ``<status>`` and the timeline table
``<timeline>`` (every decoded frame's time, for per-frame labels): exactly one row per manifest row,
in manifest order. A bad file gets a status (corrupt, too_short, ...), never stops
the run. See ``pipeline/decode/__init__.py`` for the sampling rule, the timeline and the status rules.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import pyarrow.parquet as pq

from pipeline.atomic import write_parquet
from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.decode import clip_jobs, decode_manifest, status_table, timeline_table
from pipeline.runtime.executors import open_executor


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True, help="manifest Parquet file (stage ingest)")
    parser.add_argument("--out", required=True, help="folder for the frames/audio shards")
    parser.add_argument("--status", required=True, help="status Parquet file to write")
    parser.add_argument("--timeline", required=True, help="timeline Parquet file to write (frame times)")
    args = parser.parse_args(argv)
    everything = load_params(args.params)
    params = everything.decode
    manifest = pq.read_table(args.manifest)
    ids = manifest.column("clip_id").to_pylist()
    paths = manifest.column("path").to_pylist()
    splits = manifest.column("split").to_pylist()
    jobs = clip_jobs(manifest)

    start = time.perf_counter()
    with open_executor(everything.runtime, "decode", workers=params.workers) as executor:
        reports = decode_manifest(
            jobs,
            args.out,
            params,
            log=lambda line: print(line, flush=True),
            executor=executor,
        )
    table = status_table(reports, splits, paths)
    if table.num_rows != manifest.num_rows or table.column("clip_id").to_pylist() != ids:
        raise RuntimeError("decode lost or reordered clips: status rows do not match the manifest")
    write_parquet(table, args.status)
    write_parquet(timeline_table(reports, params.fps), args.timeline)

    seconds = time.perf_counter() - start
    media = sum(r.duration_s or 0.0 for r in reports)
    counts = Counter(r.status for r in reports)
    print(
        f"decode: {len(reports)} clips ({media:.0f} s of media) in {seconds:.1f} s "
        f"({media / max(seconds, 1e-9):.1f}x real time), executor {everything.runtime.executor}: "
        f"{dict(sorted(counts.items()))}"
    )
    for report in reports:
        if report.status in ("corrupt", "error", "partial"):
            print(f"  {report.clip_id}: {report.status}: {report.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
