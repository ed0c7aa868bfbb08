"""dvc.yaml agrees with the code: each stage tracks exactly the params it reads and lists every
project module it imports (DVC does not follow imports, so a missing dep means a stale cache)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pipeline.config import ALL_KEYS, STAGE_SECTIONS, UNTRACKED_SECTIONS, stage_keys

from .conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def _expanded_stages() -> dict[str, dict]:
    stages = {}
    for name, stage in DVC["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for key, item in stage["foreach"].items():
            text = json.dumps(stage["do"]).replace("${key}", key)
            for field, value in item.items():
                text = text.replace("${item." + field + "}", value)
            stages[f"{name}@{key}"] = json.loads(text)
    return stages


STAGES = _expanded_stages()
SCRIPTS = {name: stage["cmd"].split("-m ", 1)[1].split()[0] for name, stage in STAGES.items()}


def _leaves(declared: list[str]) -> list[str]:
    return [k for k in ALL_KEYS if any(k == d or k.startswith(d + ".") for d in declared)]


@pytest.mark.parametrize("stage", sorted(STAGE_SECTIONS))
def test_stage_tracks_exactly_the_params_it_reads(stage: str) -> None:
    declared = [p for p in STAGES[stage].get("params", []) if isinstance(p, str)]
    assert sorted(_leaves(declared)) == sorted(stage_keys(stage))


def test_untracked_sections_are_read_but_never_tracked() -> None:
    # runtime (local processes or Ray) changes no output: switching it alone must rerun nothing.
    assert set(UNTRACKED_SECTIONS) <= set(STAGE_SECTIONS)
    for stage, sections in UNTRACKED_SECTIONS.items():
        declared = [p for p in STAGES[stage].get("params", []) if isinstance(p, str)]
        assert not set(_leaves(declared)) & set(_leaves(list(sections))), stage
        assert not set(stage_keys(stage)) & set(_leaves(list(sections))), stage
    assert not any(p.startswith("runtime") for stage in STAGES.values() for p in stage.get("params", []))


def test_feature_stages_never_track_fusion_or_train() -> None:
    for name in ("decode", "asr", "features@visual", "features@audio", "features@text"):
        assert not any(p.startswith(("fusion", "train")) for p in STAGES[name].get("params", []))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_list_every_project_module_it_imports(stage: str) -> None:
    module = SCRIPTS[stage]
    # stages/features.py imports a modality's code on demand; import what it names for this one.
    lazy = []
    if stage.startswith("features@"):
        from pipeline.features import MODALITY_CODE

        lazy = list(MODALITY_CODE[stage.split("@", 1)[1]])
    probe = (
        "import importlib, json, sys, pathlib\n"
        f"for name in {[module, *lazy]!r}: importlib.import_module(name)\n"
        "root = pathlib.Path.cwd().resolve()\n"
        "files = set()\n"
        "for m in list(sys.modules.values()):\n"
        "    f = getattr(m, '__file__', None)\n"
        "    p = pathlib.Path(f) if f else None\n"
        "    if p and p.is_absolute() and p.resolve().is_relative_to(root) and '.venv' not in f:\n"
        "        files.add(str(pathlib.Path(f).resolve().relative_to(root)))\n"
        "print(json.dumps(sorted(files)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    imported = {
        f for f in json.loads(out.stdout.strip().splitlines()[-1]) if not f.endswith("/__init__.py") or f.count("/") > 1
    }
    imported -= {"pipeline/__init__.py", "stages/__init__.py", "models/__init__.py"}
    deps = [d for d in STAGES[stage]["deps"] if isinstance(d, str)]
    # A dep may be the module's file or a code folder holding it (pipeline/decode, models).
    unlisted = [f for f in imported if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert sorted(unlisted) == [], f"{stage} imports modules its dvc.yaml deps do not list"
