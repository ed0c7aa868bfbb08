"""Stage ingest: read the configured dataset into data/manifest.parquet (one row per clip or track) and,
for a frame-level release, every task's frame labels into data/frame_labels/ (``pipeline/ingest``)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from pipeline.atomic import write_parquet
from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.ingest.frame_labels import write_release_labels
from pipeline.ingest.manifest import IngestError
from pipeline.ingest.release import read_release


@user_errors(IngestError)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="manifest Parquet file to write")
    parser.add_argument("--labels", required=True, help="folder for the frame labels of a frame-level release")
    args = parser.parse_args(argv)
    data = load_params(args.params).data
    release = read_release(data.source, data.root, limit_per_split=data.limit_per_split)
    write_parquet(release.manifest, args.out)
    write_release_labels(args.labels, release.tasks, data.source)
    counts = Counter(release.manifest.column("split").to_pylist())
    unit = "tracks" if release.tasks else "clips"
    print(f"ingest: {release.manifest.num_rows} {unit} from {data.source} at {data.root}: {dict(counts)}")
    for labels in release.tasks:
        per_split = Counter(t.split for t in labels.tracks.values())
        frames = sum(t.n_frames for t in labels.tracks.values())
        print(f"ingest: {labels.task.name}: {dict(per_split)} tracks, {frames} frames to predict, "
              f"{len(labels.sample)} sample submission rows")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
