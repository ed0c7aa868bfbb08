"""Stage make_demo: write the built-in synthetic dataset (clips, labels, faults, latents, ceiling).

For task emi: short clips with six intensities (``pipeline/demo``: generative model, fault clips,
layout). For the frame-level tasks (va, expr, au): a miniature Aff-Wild2 release of minutes-long
tracks (``pipeline/demo/tracks``), the same release for all three. When ``data.source`` is not
``demo`` nothing is generated: the output folder holds only a note, so a Hume, manifest or Aff-Wild2
run does not pay for the demo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pipeline.atomic import write_text
from pipeline.cli import user_errors
from pipeline.config import MODALITIES, DemoParams, load_params
from pipeline.demo import generate_demo
from pipeline.demo.tracks import generate_tracks
from pipeline.runtime.devices import usable_cpus
from pipeline.tasks import get_task


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="dataset folder to (re)write")
    parser.add_argument("--workers", type=int, default=min(2, usable_cpus()), help="processes rendering clips")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    demo, source = params.demo, params.data.source
    if source != "demo":
        out = Path(args.out)
        if out.exists():
            shutil.rmtree(out)
        write_text(f"Not generated: data.source is {source!r}, not 'demo'.\n", out / "SKIPPED")
        print(f"make_demo: skipped (data.source is {source!r})")
        return 0
    start = time.perf_counter()
    if get_task(params.task).is_frame:
        _make_tracks(args.out, demo, args.workers)
        return 0
    ceiling = generate_demo(args.out, demo, workers=args.workers)
    n_clips = demo.n_train + demo.n_valid + demo.n_test
    singles = {m: ceiling["modalities"][m]["mean"] for m in MODALITIES}
    print(
        f"make_demo: {n_clips} clips (+faults: {demo.faults}) in {args.out} in {time.perf_counter() - start:.1f} s; "
        f"noise ceiling mean Pearson fused {ceiling['fused']['mean']:.3f}, single modality {singles}"
    )
    return 0


def _make_tracks(out: str, demo: DemoParams, workers: int) -> None:
    start = time.perf_counter()
    ceiling = generate_tracks(out, demo, workers=workers)
    n_tracks = demo.tracks.n_train + demo.tracks.n_valid + demo.tracks.n_test
    fused = {t: ceiling[t]["fused"] for t in ("va", "expr", "au")}
    visual = {t: ceiling[t]["modalities"]["visual"] for t in ("va", "expr", "au")}
    print(
        f"make_demo: {n_tracks} tracks (Aff-Wild2 layout) in {out} in {time.perf_counter() - start:.1f} s; "
        f"noise ceiling fused / visual only: VA CCC {fused['va']['mean']:.3f} / {visual['va']['mean']:.3f}, "
        f"EXPR macro F1 {fused['expr']['macro']:.3f} / {visual['expr']['macro']:.3f}, "
        f"AU mean F1 {fused['au']['mean']:.3f} / {visual['au']['mean']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
