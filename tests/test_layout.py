"""The code layout keeps its promises: small modules and functions, and an edit reruns only the
stages that use the edited code (checked with ``dvc status`` on a copy of the repository)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

CODE_DIRS = ("pipeline", "stages", "models", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py"))


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(REPO)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    assert too_long == []


# Every output and data dependency of dvc.yaml, as placeholders: `dvc commit` records their hashes,
# so `dvc status` afterwards reports exactly the stages whose code or params changed.
PLACEHOLDERS = (
    "data/params.ok",
    "data/demo/labels.csv",
    "data/manifest.parquet",
    "data/frame_labels/va.parquet",
    "data/decoded/audio-00000.parquet",
    "data/decode_status.parquet",
    "data/timeline.parquet",
    "data/asr/transcripts.parquet",
    "data/asr/encoder/encoder-00000.parquet",
    "data/features/visual/train-00000.parquet",
    "data/features/audio/train-00000.parquet",
    "data/features/text/train-00000.parquet",
    "data/model/config.json",
    "eval/train/metrics.json",
    "eval/train/plots/metrics/val_pearson.tsv",
    "eval/metrics.json",
    "eval/predictions.parquet",
    "eval/submission.csv",
    "eval/plots/robustness.csv",
)


def _run(repo: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stderr}{done.stdout}"
    return done.stdout


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files in a fresh git + DVC repo, with every stage committed as up to date."""
    repo = tmp_path_factory.mktemp("layout") / "repo"
    listed = _run(REPO, "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    for name in PLACEHOLDERS:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(f"placeholder {name}\n")
    _run(repo, "git", "init", "-q")
    _run(repo, sys.executable, "-m", "dvc", "commit", "-f", "-q")
    return repo


FEATURES = ("features@visual", "features@audio", "features@text")
MODEL = ("train", "evaluate")


def _changed_after(repo: Path, edited: str) -> set[str]:
    """Stages `dvc status` reports after appending a comment to ``edited`` (then restored)."""
    path = repo / edited
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        return set(json.loads(_run(repo, sys.executable, "-m", "dvc", "status", "--json") or "{}"))
    finally:
        path.write_bytes(original)


@pytest.mark.slow  # dvc in a copy of the repository; tests/test_dvc_yaml.py checks the deps statically
def test_the_committed_copy_is_up_to_date(committed_copy: Path) -> None:
    assert json.loads(_run(committed_copy, sys.executable, "-m", "dvc", "status", "--json") or "{}") == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edited", "stages"),
    [
        # The decoder's internals: ASR and the feature stages read only pipeline/decoded.py.
        ("pipeline/decode/video.py", {"decode"}),
        ("pipeline/decode/faults.py", {"decode"}),
        # The decode output contract is read by ASR and by the visual and audio feature stages.
        ("pipeline/decoded.py", {"decode", "asr", "features@visual", "features@audio"}),
        ("pipeline/features/text.py", {"features@text"}),
        # The organisers' pickles: read by the visual and audio feature stages only, from the data
        # root (here make_demo's output), which decode, asr and the text features never read.
        ("pipeline/features/hume/pickles.py", {"features@visual", "features@audio"}),
        ("data/demo/labels.csv", {"make_demo", "ingest", "features@visual", "features@audio"}),
        # What asr hands to features@audio: its writer and reader.
        ("pipeline/whisper/encoder_states.py", {"asr", "features@audio"}),
        ("models/ustc.py", {"train", "evaluate"}),
        # Where units of work run (local processes or Ray) is the heavy stages' business alone.
        ("pipeline/runtime/executors/units.py", {"decode", "asr", *FEATURES}),
        ("pipeline/runtime/executors/ray.py", {"decode", "asr", *FEATURES}),
        ("pipeline/runtime/executors/local.py", {"decode", "asr", *FEATURES}),
        # The shard runner builds features; training only reads the shard format.
        ("pipeline/features/runner.py", set(FEATURES)),
        ("pipeline/features/shards.py", {*FEATURES, "train", "evaluate"}),
        # Test fixtures are no stage's code; the demo's own modules are make_demo's.
        ("tests/media.py", set()),
        # The params reference generator sits beside the schema but in .dvcignore: no stage imports
        # it, so neither it nor the page it writes reruns anything.
        ("pipeline/config/reference.py", set()),
        ("docs/params.md", set()),
        # The schema itself is every stage's.
        ("pipeline/config/run.py", {"check_params", "make_demo", "ingest", "decode", "asr", *FEATURES, *MODEL}),
        ("pipeline/demo/face.py", {"make_demo"}),
    ],
)
def test_an_edit_reruns_only_the_stages_that_use_it(committed_copy: Path, edited: str, stages: set[str]) -> None:
    assert _changed_after(committed_copy, edited) == stages


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules a file imports, at the top or inside functions (lazy imports count too)."""
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up from this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def test_no_import_cycles() -> None:
    """The project's modules import each other without a cycle (lazy imports included): data and
    control flow one way, e.g. the executors never import back into the stages they serve."""
    paths = [p for d in (*CODE_DIRS, "fixtures") for p in (REPO / d).rglob("*.py")]
    graph = {_module_name(p): set() for p in paths}
    for p in paths:
        graph[_module_name(p)] = _imports(p, set(graph)) - {_module_name(p)}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
