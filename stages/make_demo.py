"""Stage make_demo: write the built-in synthetic dataset (clips, labels, faults, latents, ceiling).

The generative model, the fault clips and the output layout are documented in ``pipeline/demo``.
When ``data.source`` is not ``demo`` nothing is generated: the output folder holds only a note,
so a Hume or manifest run does not pay for 160 demo clips.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pipeline.atomic import write_text
from pipeline.cli import user_errors
from pipeline.config import MODALITIES, load_params
from pipeline.demo import generate_demo
from pipeline.runtime.devices import usable_cpus


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
    ceiling = generate_demo(args.out, demo, workers=args.workers)
    n_clips = demo.n_train + demo.n_valid + demo.n_test
    singles = {m: ceiling["modalities"][m]["mean"] for m in MODALITIES}
    print(
        f"make_demo: {n_clips} clips (+faults: {demo.faults}) in {args.out} in {time.perf_counter() - start:.1f} s; "
        f"noise ceiling mean Pearson fused {ceiling['fused']['mean']:.3f}, single modality {singles}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
