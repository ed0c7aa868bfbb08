"""Stage ingest: read the configured dataset into data/manifest.parquet (one row per clip)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from pipeline.atomic import write_parquet
from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.ingest.manifest import IngestError, build_manifest


@user_errors(IngestError)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="manifest Parquet file to write")
    args = parser.parse_args(argv)
    data = load_params(args.params).data
    table = build_manifest(data.source, data.root, limit_per_split=data.limit_per_split)
    write_parquet(table, args.out)
    counts = Counter(table.column("split").to_pylist())
    print(f"ingest: {table.num_rows} clips from {data.source} at {data.root}: {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
