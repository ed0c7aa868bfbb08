"""What ``pipeline.predict`` predicts on: one input per named file, per media entry of a named
folder, and per named path that cannot be read at all, so no path vanishes without a row.

A named path (on the command line):

- a file: an input, whatever its name (the decoder judges its content);
- a folder: its media entries (below); when it has none, one input for the folder itself;
- missing, a dangling symlink, a symlink loop, unreadable, or not a regular file (a FIFO, a
  device): an input that carries its ``problem`` and is never opened (its row is ``corrupt``).

A folder is searched recursively, entries in name order, symlinked folders followed once. A
non-hidden entry becomes an input when it looks like media by name (``pipeline.media_types``
extensions) or, for a regular file, by its first bytes. An entry named like media that cannot be
a media file (a folder called ``x.mp4``, a dangling symlink, a symlink loop, a FIFO) is an input
with its problem; a folder named like media is searched as well. Everything else is skipped and
counted by reason (hidden, not media, ...) in :meth:`Resolved.summary`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.media_types import has_media_suffix, sniff_file

NO_MEDIA = "folder holds no video or audio file"


@dataclass(frozen=True)
class Input:
    """A path to predict on; ``problem`` says why it cannot be decoded at all ("" when it can)."""

    path: Path
    problem: str = ""


@dataclass
class Resolved:
    inputs: list[Input] = field(default_factory=list)
    folders: int = 0  # folders searched
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> paths, folder searches only

    def skip(self, reason: str, path: Path) -> None:
        self.skipped.setdefault(reason, []).append(str(path))

    def summary(self) -> str:
        """One line: what the folder searches found and what they skipped (with a few examples)."""
        found = len(self.inputs)
        line = f"predict: {found} input{'s' if found != 1 else ''}"
        if self.folders:
            line += f" ({self.folders} folder{'s' if self.folders != 1 else ''} searched)"
        if self.skipped:
            parts = []
            for reason, paths in sorted(self.skipped.items()):
                examples = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
                parts.append(f"{len(paths)} {reason} ({examples})")
            total = sum(len(p) for p in self.skipped.values())
            line += f"; skipped {total} entr{'ies' if total != 1 else 'y'}: " + "; ".join(parts)
        return line


def _problem(path: Path) -> tuple[os.stat_result | None, str]:
    """(stat of what ``path`` points to, "") or (None, why it cannot be read)."""
    try:
        return path.stat(), ""
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "symlink loop"
        if isinstance(error, FileNotFoundError) and path.is_symlink():
            return None, f"dangling symlink to {os.readlink(path)}"
        if isinstance(error, FileNotFoundError):
            return None, "no such file or folder"
        return None, f"cannot read: {error.strerror or error}"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device")):
        if test(mode):
            return name
    return "a device" if stat.S_ISBLK(mode) else "not a regular file"


def resolve_inputs(paths: Sequence[str | os.PathLike[str]]) -> Resolved:
    """The inputs of the command line, in its order (see the module docstring)."""
    resolved = Resolved()
    for raw in paths:
        path = Path(raw)
        info, problem = _problem(path)
        if info is None:
            resolved.inputs.append(Input(path, problem))
        elif stat.S_ISDIR(info.st_mode):
            resolved.folders += 1
            found = list(_walk(path, resolved, {(info.st_dev, info.st_ino)}))
            resolved.inputs.extend(found or [Input(path, NO_MEDIA)])
        elif stat.S_ISREG(info.st_mode):
            resolved.inputs.append(Input(path))
        else:
            resolved.inputs.append(Input(path, f"{_kind(info.st_mode)}, not a media file"))
    return resolved


def _walk(folder: Path, resolved: Resolved, seen: set[tuple[int, int]]) -> Iterator[Input]:
    """The inputs under ``folder``, depth first in name order; ``seen``: folders already searched."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        yield Input(folder, f"cannot list folder: {error.strerror or error}")
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            resolved.skip("hidden", path)
            continue
        named = has_media_suffix(entry.name)
        info, problem = _problem(path)
        if info is None:
            if named:
                yield Input(path, problem)
            else:
                resolved.skip("broken link" if path.is_symlink() else "unreadable", path)
        elif stat.S_ISDIR(info.st_mode):
            if named:
                yield Input(path, "a folder, not a media file")
            if (info.st_dev, info.st_ino) in seen:
                resolved.skip("folder already searched (symlink)", path)
                continue
            seen.add((info.st_dev, info.st_ino))
            yield from _walk(path, resolved, seen)
        elif stat.S_ISREG(info.st_mode):
            if named or sniff_file(path) is not None:
                yield Input(path)
            else:
                resolved.skip("not media", path)
        elif named:
            yield Input(path, f"{_kind(info.st_mode)}, not a media file")
        else:
            resolved.skip("not a regular file", path)
