"""docs/params.md cannot drift from the schema: it is what ``python -m pipeline.config.reference``
renders from pipeline/config/ (the comments above the fields are the descriptions), every key has a
description, and the generator is no stage's dependency."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.config import ALL_KEYS, STAGE_SECTIONS
from pipeline.config.reference import (
    COMMAND,
    PAGE,
    MissingDescription,
    entries,
    field_comments,
    main,
    readers,
    render,
    section_entries,
    type_text,
)

from .conftest import REPO


def test_the_page_is_what_the_schema_renders() -> None:
    page = (REPO / PAGE).read_text(encoding="utf-8")
    assert page == render(), f"{PAGE} differs from the schema in pipeline/config/: regenerate it with `{COMMAND}`"


def test_every_key_has_one_row_with_a_description() -> None:
    rows = [row for _, _, section_rows in entries() for row in section_rows]
    assert sorted(row.key for row in rows) == sorted(ALL_KEYS)  # each key once, subsections after their parent's keys
    assert [row.key for row in rows if len(row.description.split()) < 3] == []
    page = (REPO / PAGE).read_text(encoding="utf-8")
    assert all(page.count(f"| `{key}` |") == 1 for key in ALL_KEYS)


def test_rows_say_type_default_and_readers() -> None:
    rows = {row.key: row for _, _, section_rows in entries() for row in section_rows}
    assert rows["decode.fps"].type == "float > 0.0" and rows["decode.fps"].default == "5.0"
    assert rows["fusion.model"].type.startswith("`taemi` \\| `ustc`")
    assert rows["fusion.modalities"].default == "[visual, audio, text]"
    assert rows["train.ema"].type == "float in (0.0, 1.0) or `null`" and rows["train.ema"].default == "null"
    assert rows["demo.frame_size"].type == "int ≥ 64, multiple of 2"
    assert rows["data.source"].readers == "make_demo, ingest"
    assert rows["features.dtype"].readers == "features@*"
    assert rows["runtime.executor"].readers == "decode, asr, features@* (untracked)"
    assert rows["gate.tolerance"].readers == "no stage"
    # A key that shares the comment above its neighbour points at it instead of repeating it.
    assert rows["demo.n_valid"].shares == "demo.n_train" and rows["demo.n_valid"].description
    assert rows["demo.n_train"].shares is None


def test_readers_follow_stage_sections() -> None:
    for stage, prefixes in STAGE_SECTIONS.items():
        for key in ALL_KEYS:
            if any(key == p or key.startswith(p + ".") for p in prefixes):
                assert stage in readers(key) or (stage.startswith("features@") and "features@*" in readers(key))


SAMPLE = '''
"""A schema module written the way pipeline/config/*.py is."""

from typing import Literal

from pydantic import Field

from pipeline.config.base import Section


class Documented(Section):
    """The section's line.

    A second paragraph, not used for a field."""

    # One line.
    alone: int = 1
    # Two lines
    # joined.
    first: float = Field(default=0.5, ge=0.0, le=1.0)
    second: float = 0.1
    third: str = "# not a comment"

    # A comment, then a blank line, ends the group: unrelated has no comment.
    grouped: bool = True

    unrelated: int = 2
    text: str = "x"  # a trailing comment is not a description
    choice: Literal["a", "b"] | None = None


class Bare(Section):
    # The only commented field.
    noted: int = 0

    silent: int = 0
'''


@pytest.fixture
def sample(tmp_path: Path):
    path = tmp_path / "sample_schema.py"
    path.write_text(textwrap.dedent(SAMPLE), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("sample_schema", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sample_schema"] = module  # pydantic resolves the annotations through it
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["sample_schema"]


def test_comments_above_a_field_are_its_description(sample) -> None:
    found = {name: (c.text, c.above) for name, c in field_comments(sample.Documented).items()}
    assert found == {
        "alone": ("One line.", "alone"),
        "first": ("Two lines joined.", "first"),
        "second": ("Two lines joined.", "first"),  # no blank line: the group goes on
        "third": ("Two lines joined.", "first"),  # a "#" inside a string is no comment
        "grouped": ("A comment, then a blank line, ends the group: unrelated has no comment.", "grouped"),
    }


def test_a_field_without_comment_gets_its_sections_line(sample) -> None:
    missing: list[str] = []
    rows = {row.key: row for row in section_entries(sample.Documented, "s.", missing)}
    assert missing == []
    assert rows["s.unrelated"].description == "The section's line."
    assert rows["s.text"].description == "The section's line."
    assert rows["s.second"].shares == "s.first" and rows["s.first"].type == "float in [0.0, 1.0]"
    assert type_text(sample.Documented.model_fields["choice"].annotation) == "`a` \\| `b` or `null`"


def test_a_key_with_neither_comment_nor_docstring_is_reported(sample) -> None:
    missing: list[str] = []
    rows = section_entries(sample.Bare, "bare.", missing)
    assert [row.key for row in rows] == ["bare.noted", "bare.silent"]
    assert missing == ["bare.silent"]


def test_the_command_writes_the_page_and_check_fails_on_a_stale_one(tmp_path: Path, capsys) -> None:
    page = tmp_path / "params.md"
    assert main(["--out", str(page), "--check"]) == 1  # missing
    assert main(["--out", str(page)]) == 0 and page.read_text(encoding="utf-8") == render()
    assert main(["--out", str(page), "--check"]) == 0
    page.write_text(render().replace("Seed of that random drop.", "Seed."), encoding="utf-8")
    assert main(["--out", str(page), "--check"]) == 1
    assert COMMAND in capsys.readouterr().err


def test_missing_descriptions_are_a_one_line_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import pipeline.config.reference as reference

    def no_descriptions():
        raise MissingDescription("no description (...) for: x.y")

    monkeypatch.setattr(reference, "entries", no_descriptions)
    assert main(["--check"]) == 2
    assert capsys.readouterr().err == "error: no description (...) for: x.y\n"


def test_the_generator_is_no_stage_dependency() -> None:
    # pipeline.config does not import it, so no stage imports it through the schema ...
    probe = "import sys, pipeline.config, pipeline.cli; print('pipeline.config.reference' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    # ... no stage script names it ...
    assert not [p for p in (REPO / "stages").glob("*.py") if "config.reference" in p.read_text(encoding="utf-8")]
    # ... and DVC leaves it out of the pipeline/config folder every stage tracks (.dvcignore).
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "check-ignore", "pipeline/config/reference.py", "pipeline/config/base.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.stdout.split() == ["pipeline/config/reference.py"], done.stderr
