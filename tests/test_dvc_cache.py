"""The project's DVC cache links outputs instead of copying them, and stages still rerun on them.

A toy pipeline with the project's ``.dvc/config``: ``big`` writes a large output (like
data/decoded), ``small`` a persistent one from it (like the feature shards: one file rewritten
atomically, one kept). The large output in the workspace is the cache's file (a hard link, no
second copy); DVC makes it read-only, and rerunning both stages after a change still works.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

BIG = """\
import pathlib, sys
out = pathlib.Path("big"); out.mkdir(exist_ok=True)
(out / "frames.bin").write_bytes(open("params.yaml").read().encode() * 50000)
"""
SMALL = """\
import os, tempfile, pathlib
out = pathlib.Path("small"); out.mkdir(exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=out)
os.write(fd, pathlib.Path("big/frames.bin").read_bytes()[:1000]); os.close(fd)
os.replace(tmp, out / "features.bin")  # over a read-only link: a rename, never a write in place
keep = out / "kept.bin"
if not keep.exists():
    keep.write_bytes(b"k" * 1000)
"""
DVC_YAML = """\
stages:
  big:
    cmd: python big.py
    deps: [big.py]
    params: [value]
    outs: [big]
  small:
    cmd: python small.py
    deps: [small.py, big]
    outs:
      - small:
          persist: true
"""


def _run(repo: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv}: {done.stderr}{done.stdout}"
    return done.stdout


def test_outputs_are_links_into_the_cache_and_reruns_work(tmp_path: Path) -> None:
    repo = tmp_path / "toy"
    repo.mkdir()
    _run(repo, "git", "init", "-q")
    _run(repo, sys.executable, "-m", "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / "big.py").write_text(BIG)
    (repo / "small.py").write_text(SMALL)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    path = f"PATH={Path(sys.executable).parent}:/usr/bin:/bin"
    for value in ("a", "b"):
        (repo / "params.yaml").write_text(f"value: {value}\n")
        _run(repo, "env", path, sys.executable, "-m", "dvc", "repro", "-q")
        frames = repo / "big" / "frames.bin"
        assert frames.read_bytes().startswith(f"value: {value}".encode())
        assert (repo / "small" / "features.bin").read_bytes().startswith(f"value: {value}".encode())
        assert json.loads(_run(repo, sys.executable, "-m", "dvc", "status", "--json") or "{}") == {}
        # One copy on disk: the workspace file and the cache entry are the same inode.
        assert frames.stat().st_nlink == 2 and not frames.stat().st_mode & 0o222
        cached = [p for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file()]
        assert frames.stat().st_ino in {p.stat().st_ino for p in cached}
