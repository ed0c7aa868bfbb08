"""The params reference, ``docs/params.md``, rendered from the schema itself so that it cannot drift.

    python -m pipeline.config.reference            # rewrite docs/params.md
    python -m pipeline.config.reference --check    # exit 1 when docs/params.md differs from the schema

Every leaf key of :class:`~pipeline.config.Params` gets a row: its dotted name, its type (choices of a
``Literal``, bounds of a ``Field``), its default (the shipped params.yaml equals the defaults,
``tests/test_config.py``), the stages that read it (``STAGE_SECTIONS``; ``UNTRACKED_SECTIONS`` are read
but not tracked) and its description. **The comments above each field in ``pipeline/config/*.py`` are
the documentation**: they are read here with :mod:`tokenize` (which tells a comment from a ``#`` inside
a string) and :mod:`ast` (which says where each field is), so whoever edits a field edits its row. A
comment documents the field below it and the fields that follow with no blank line between
(:func:`field_comments`). A field without one gets its section's docstring (first paragraph); a key
with neither is an error (:class:`MissingDescription`), and ``tests/test_params_reference.py`` fails
on it and on a stale page.

No stage depends on this module: ``pipeline/config/__init__.py`` does not import it, and ``.dvcignore``
leaves it out of the ``pipeline/config`` folder that every stage tracks, so editing it (or the page it
writes) reruns nothing.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import sys
import tokenize
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipeline.atomic import write_text
from pipeline.cli import user_errors
from pipeline.config import STAGE_SECTIONS, UNTRACKED_SECTIONS, Params

PAGE = Path("docs/params.md")
COMMAND = "python -m pipeline.config.reference"


class MissingDescription(ValueError):
    """Some keys have neither a comment above their field nor a docstring on their section."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One leaf key of params.yaml, as its row of the reference shows it."""

    key: str  # dotted, as `dvc exp run -S key=value` spells it
    type: str
    default: str
    readers: str
    description: str
    # The key whose comment this one shares (the page says "as for ..." instead of repeating it).
    shares: str | None = None


class Comment(NamedTuple):
    text: str
    above: str  # the field the comment sits directly above (itself, or the first of its group)


# ------------------------------------------------------------------------------ reading the source
@cache
def _comment_lines(path: str) -> dict[int, str]:
    """``{line number: text}`` of the lines of ``path`` that hold only a comment."""
    lines: dict[int, str] = {}
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    source_lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        row, col = token.start
        if token.type == tokenize.COMMENT and not source_lines[row - 1][:col].strip():
            lines[row] = token.string.removeprefix("#").strip()
    return lines


@cache
def _class_node(cls: type) -> tuple[str, ast.ClassDef]:
    path = inspect.getsourcefile(cls)
    if path is None:
        raise MissingDescription(f"{cls.__qualname__}: no source file to read its comments from")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return path, node
    raise MissingDescription(f"{cls.__qualname__}: class not found in {path}")


def field_comments(cls: type[BaseModel]) -> dict[str, Comment]:
    """``{field: its comment}`` for the annotated fields of ``cls``'s own body.

    A block of comment lines documents the field right below it and the fields that follow that one
    with no blank line between (``n_train`` / ``n_valid`` / ``n_test`` share one comment); a blank
    line, another comment or any other statement ends the group. A field outside any group has no
    entry here."""
    path, node = _class_node(cls)
    comments = _comment_lines(path)
    found: dict[str, Comment] = {}
    group: Comment | None = None
    previous_end = -1
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            group, previous_end = None, -1
            continue
        name = statement.target.id
        block: list[str] = []
        line = statement.lineno - 1
        while line in comments:
            block.insert(0, comments[line])
            line -= 1
        if block:
            group = Comment(" ".join(part for part in block if part), name)
        elif statement.lineno != previous_end + 1:
            group = None
        if group:
            found[name] = group
        previous_end = statement.end_lineno or statement.lineno
    return found


def section_summary(cls: type[BaseModel]) -> str:
    """The first paragraph of the section's docstring as one line ('' without a docstring)."""
    _, node = _class_node(cls)
    doc = ast.get_docstring(node) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


# ------------------------------------------------------------------------------ rendering values
def _bounds(metadata: list[Any]) -> str:
    """``in [0, 1]``, ``> 0``, ``≥ 1``... from a Field's ge/gt/le/lt, and ``multiple of 2`` (pydantic
    keeps them as annotated-types constraints, one attribute each)."""
    low = high = ""
    extra = []
    for item in metadata:
        if getattr(item, "ge", None) is not None:
            low = f"[{item.ge}"
        elif getattr(item, "gt", None) is not None:
            low = f"({item.gt}"
        elif getattr(item, "le", None) is not None:
            high = f"{item.le}]"
        elif getattr(item, "lt", None) is not None:
            high = f"{item.lt})"
        elif getattr(item, "multiple_of", None) is not None:
            extra.append(f"multiple of {item.multiple_of}")
    if low and high:
        extra.insert(0, f"in {low}, {high}")
    elif low:
        extra.insert(0, ("≥ " if low[0] == "[" else "> ") + low[1:])
    elif high:
        extra.insert(0, ("≤ " if high[-1] == "]" else "< ") + high[:-1])
    return ", ".join(extra)


def type_text(annotation: Any, bounds: str = "") -> str:
    """A field's type as the page shows it: choices spelled out, the bounds after the type they
    bound, ``null`` last where None is allowed (``int ≥ 1 or `null```)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        text = " or ".join(type_text(arg, bounds) for arg in args)
        return text + " or `null`" if len(args) < len(get_args(annotation)) else text
    if origin is tuple:
        return "list of " + type_text(get_args(annotation)[0])
    name = getattr(annotation, "__name__", str(annotation))
    return f"{name} {bounds}" if bounds else name


def _field_type(field: FieldInfo) -> str:
    return type_text(field.annotation, _bounds(field.metadata))


def yaml_value(value: Any) -> str:
    """A default as params.yaml writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def readers(key: str) -> str:
    """The stages that read ``key``: those that track it, then those that read it untracked."""

    def covers(prefixes: tuple[str, ...]) -> bool:
        return any(key == p or key.startswith(p + ".") for p in prefixes)

    tracked = _short([stage for stage, prefixes in STAGE_SECTIONS.items() if covers(prefixes)])
    untracked = _short([stage for stage, prefixes in UNTRACKED_SECTIONS.items() if covers(prefixes)])
    parts = [", ".join(tracked)] if tracked else []
    if untracked:
        parts.append(", ".join(untracked) + " (untracked)")
    return "; ".join(parts) or "no stage"


def _short(stages: list[str]) -> list[str]:
    """All three ``features@<modality>`` stages present: one ``features@*`` in the first one's place."""
    every = [name for name in STAGE_SECTIONS if name.startswith("features@")]
    if not every or not set(every) <= set(stages):
        return stages
    short: list[str] = []
    for stage in stages:
        name = "features@*" if stage in every else stage
        if name not in short:
            short.append(name)
    return short


# ------------------------------------------------------------------------------ the entries
def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def section_entries(cls: type[BaseModel], prefix: str, missing: list[str]) -> list[Entry]:
    """The rows of the leaf keys directly in section ``cls`` (its subsections are their own tables)."""
    comments = field_comments(cls)
    fallback = section_summary(cls)
    rows = []
    for name, field in cls.model_fields.items():
        if _is_section(field.annotation):
            continue
        key = prefix + name
        comment = comments.get(name)
        description = comment.text if comment else fallback
        if not description:
            missing.append(key)
        rows.append(
            Entry(
                key=key,
                type=_field_type(field),
                default=yaml_value(field.default),
                readers=readers(key),
                description=description,
                shares=prefix + comment.above if comment and comment.above != name else None,
            )
        )
    return rows


def sections(model: type[BaseModel] = Params, prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """``(dotted name, section class)`` of ``model`` and every section nested in it, in schema order."""
    found = [(prefix.rstrip("."), model)]
    for name, field in model.model_fields.items():
        if _is_section(field.annotation):
            found.extend(sections(field.annotation, f"{prefix}{name}."))
    return found


def entries() -> list[tuple[str, type[BaseModel], list[Entry]]]:
    """Every section with its rows; raises :class:`MissingDescription` naming every key without one."""
    missing: list[str] = []
    found = [(name, cls, section_entries(cls, name + "." if name else "", missing)) for name, cls in sections()]
    if missing:
        raise MissingDescription(
            "no description (a comment above the field, or a docstring on its section) for: " + ", ".join(missing)
        )
    return found


# ------------------------------------------------------------------------------ the page
INTRO = f"""# Params reference

<!-- Generated by `{COMMAND}` from the schema in pipeline/config/: edit the comments there, not this page. -->

Every key of `params.yaml`, rendered from the typed schema in `pipeline/config/` (one module per group
of sections) by `{COMMAND}`. The descriptions are the comments above each field in
`pipeline/config/*.py` (a field without one shows its section's docstring), so the schema is the one
place to edit: change the comment there and regenerate. `tests/test_params_reference.py` fails when
this page differs from what the schema renders, and when a key has no description.

- **type**: the choices of a key, or its Python type with its bounds (`[0, 1]`: 0 and 1 allowed, `(0, 1]`: 0 not).
- **default**: the value in the shipped `params.yaml`, which equals the schema's defaults (`tests/test_config.py`).
- **read by**: the stages whose `params` in `dvc.yaml` track the key (`STAGE_SECTIONS` in
  `pipeline/config/__init__.py`): changing it reruns them and every stage downstream. *untracked*: read
  but tracked by no stage (where the work runs, not what it computes: switching it alone reruns
  nothing). *no stage*: read only by a command outside the DVC stages (the CI gate, the grids).

Unknown keys and bad values are errors naming the key, raised in `check_params` before any stage does
work ([pipeline.md](pipeline.md#params-are-validated)); the rules across keys (such as
`decode.silence_dbfs` ≤ `decode.speech_check_dbfs`, `fusion.d_model` a multiple of `fusion.n_heads`, a
frame-level `task` with a frame-level `fusion.model`) are checked the same way, their messages naming
the keys.
"""


def _markdown(text: str) -> str:
    """A docstring's or comment's text as markdown: reST ``literals`` become `code`."""
    return text.replace("``", "`")


def _cell(row: Entry) -> str:
    text = f"as for `{row.shares}` above" if row.shares else _markdown(row.description)
    return text.replace("|", "\\|")


def _docstring(cls: type[BaseModel]) -> str:
    _, node = _class_node(cls)
    paragraphs = (ast.get_docstring(node) or "").split("\n\n")
    return "\n\n".join(_markdown(" ".join(p.split())) for p in paragraphs if p.strip())


def render() -> str:
    """The whole page, from the schema (raises :class:`MissingDescription`)."""
    out = [INTRO]
    for name, cls, rows in entries():
        if not rows:
            continue
        level = "##" if "." not in name else "###"
        out.append(f"\n{level} {name or 'Top level'}\n")
        intro = _docstring(cls)
        if intro:
            out.append(f"\n{intro}\n")
        out.append("\n| key | type | default | read by | description |\n|---|---|---|---|---|\n")
        out.extend(f"| `{row.key}` | {row.type} | `{row.default}` | {row.readers} | {_cell(row)} |\n" for row in rows)
    return "".join(out)


@user_errors(MissingDescription)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PAGE, help=f"page to write or check (default: {PAGE})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page is stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != page:
            print(f"{args.out} differs from the schema: regenerate it with `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    write_text(page, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
