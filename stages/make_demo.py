"""Stage make_demo: write the built-in synthetic dataset (clips, labels, faults, latents, ceiling).

The generative model, the fault clips and the output layout are documented in ``pipeline/demo.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from pipeline.config import ParamsError, load_params
from pipeline.demo import generate_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="dataset folder to (re)write")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes rendering clips")
    args = parser.parse_args(argv)
    try:
        demo = load_params(args.params).demo
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    ceiling = generate_demo(args.out, demo, workers=args.workers)
    n_clips = demo.n_train + demo.n_valid + demo.n_test
    singles = {m: ceiling["modalities"][m]["mean"] for m in ("visual", "audio", "text")}
    print(
        f"make_demo: {n_clips} clips (+faults: {demo.faults}) in {args.out} in {time.perf_counter() - start:.1f} s; "
        f"noise ceiling mean Pearson fused {ceiling['fused']['mean']:.3f}, single modality {singles}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
