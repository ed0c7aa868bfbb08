"""Command-line entry points: a user error is one line on stderr and exit status 2, never a traceback.

Every ``main`` of ``stages/``, ``pipeline.predict``, ``pipeline.experiments.gate`` and ``pipeline.experiments.grid`` is
wrapped by :func:`user_errors`. User errors are what the person running the command can fix: bad
or missing params (:class:`ParamsError`), a wrong argument (:class:`UsageError`), and a named
file or folder that is missing or unreadable (``FileNotFoundError``, ``PermissionError``...); a
command adds its own (``IngestError``, ``GridError``). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from pipeline.config import ParamsError


class UsageError(Exception):
    """A wrong argument or input; the message names it and says what to do."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ParamsError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

Main = Callable[[list[str] | None], int]


def describe(error: BaseException) -> str:
    """Any error as one line, the one home of this rule: an OSError naming a file as
    "<file>: <reason>", others as "<type>: <message>" (decode statuses, predict rows, warnings)."""
    if isinstance(error, OSError):
        if error.filename is not None:
            return f"{error.filename}: {error.strerror or error}"
        if isinstance(error, FileNotFoundError):  # pyarrow's: the message is only the path
            return f"{error}: no such file"
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _user_message(error: BaseException) -> str:
    # The project's own errors (UsageError, ParamsError, IngestError...) are written for the user.
    return describe(error) if isinstance(error, OSError) else str(error) or type(error).__name__


def user_errors(*extra: type[BaseException]) -> Callable[[Main], Main]:
    """Decorate ``main(argv) -> exit status``: ``USER_ERRORS`` and ``extra`` print ``error: ...``
    on stderr and return 2."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except (*USER_ERRORS, *extra) as error:
                print(f"error: {_user_message(error)}", file=sys.stderr)
                return 2

        return run

    return wrap
