"""Load a pickled 2-D numpy array without running anything else the pickle names.

A pickle is a program: each ``GLOBAL`` / ``STACK_GLOBAL`` opcode names a callable (``module.name``)
that a later ``REDUCE`` calls with arguments the file chooses, so ``pickle.load`` of a hostile file
runs ``os.system`` or anything else importable. :class:`ArrayUnpickler` resolves only the globals a
pickled ndarray needs and refuses every other name in ``find_class``, before the name is imported
or called: a refused pickle stops there, and nothing it names has run.

Allowed, and why (``pickletools.dis`` of arrays pickled by numpy 1.26 and 2.2, protocols 0-5):

- ``numpy.core.multiarray._reconstruct`` (numpy 1.x) / ``numpy._core.multiarray._reconstruct``
  (numpy 2.x), with ``numpy.ndarray`` and ``numpy.dtype``: ``ndarray.__reduce__``, protocols 0-4;
- ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``: protocol 5;
- ``_codecs.encode``: protocols 0-2 write the raw bytes as a latin-1 string and this call turns
  them back into bytes; it is resolved to a wrapper that accepts only ``(str, "latin1")``.

Either numpy's names resolve to the installed numpy's functions, so a release pickled under
numpy 1 loads under numpy 2 and the other way round. A refused global raises :class:`UnsafePickle`
naming the file and ``module.name``; anything else wrong (truncated, not a pickle, an object that
is not a (T, width) float array, NaN or values beyond float16's range) raises :class:`BadPickle`.
"""

from __future__ import annotations

import importlib
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

# Values beyond float16's range cannot be stored in the default feature dtype; ViT and wav2vec2
# states are O(1)-O(10), so such a value means a wrong file, not a feature.
MAX_ABS = float(np.finfo(np.float16).max)


class UnsafePickle(pickle.UnpicklingError):
    """The pickle names a global that a numpy array does not need; nothing of it was run.

    ``source``: the file; ``refused``: what was refused (``module.name``, or the call for ``_codecs.encode``).
    """

    def __init__(self, message: str, *, source: str, refused: str) -> None:
        super().__init__(message)
        self.source, self.refused = source, refused


class BadPickle(ValueError):
    """The file is not a pickled (T, width) float array with finite values."""


@lru_cache(maxsize=1)
def _numpy_globals() -> dict[tuple[str, str], object]:
    """(module, name) -> the installed numpy's object, for both numpy 1.x and 2.x spellings."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
        numeric = importlib.import_module("numpy._core.numeric")
    except ImportError:  # numpy 1.x: numpy.core is the real package
        multiarray = importlib.import_module("numpy.core.multiarray")
        numeric = importlib.import_module("numpy.core.numeric")
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


ALLOWED_GLOBALS: tuple[str, ...] = (*sorted(f"{m}.{n}" for m, n in _numpy_globals()), "_codecs.encode")


class ArrayUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`; ``source`` names the file in errors."""

    def __init__(self, file, *, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        found = _numpy_globals().get((module, name))
        if found is not None:
            return found
        if (module, name) == ("_codecs", "encode"):
            return self._latin1
        raise UnsafePickle(
            f"{self.source}: refused global {module}.{name}: a pickled numpy array needs only "
            f"{', '.join(ALLOWED_GLOBALS)}; nothing of this file was run",
            source=self.source,
            refused=f"global {module}.{name}",
        )

    def _latin1(self, text: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """``_codecs.encode`` as protocols 0-2 use it for bytes: latin-1 of a str, nothing else."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            call = f"_codecs.encode({type(text).__name__}, {encoding!r})"
            raise UnsafePickle(f"{self.source}: refused {call}", source=self.source, refused=call)
        return text.encode("latin-1")


def load_array(path: str | Path, *, width: int, source: str | None = None) -> np.ndarray:
    """The (T, width) float array pickled in ``path``, as float32, T >= 1.

    ``source``: how errors name the file (default: the path). Raises :class:`UnsafePickle` for a
    global outside :data:`ALLOWED_GLOBALS`, :class:`BadPickle` for anything else wrong.
    """
    source = source or str(path)
    try:
        # Unpickled straight from the file (buffered), so a long clip's array is not held twice.
        with open(path, "rb") as handle:
            value = ArrayUnpickler(handle, source=source).load()
    except UnsafePickle:
        raise
    except OSError as error:
        raise BadPickle(f"{source}: cannot read it ({type(error).__name__}: {error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file is this clip's problem, never the run's
        raise BadPickle(f"{source}: not a readable pickle ({type(error).__name__}: {error})") from None
    return check_array(value, width=width, source=source)


def check_array(value: object, *, width: int, source: str) -> np.ndarray:
    """``value`` as (T, width) float32 if it is a finite float ndarray of that shape, T >= 1."""
    if type(value) is not np.ndarray:
        raise BadPickle(f"{source}: holds a {type(value).__name__}, expected a numpy array (T, {width})")
    if value.ndim != 2 or value.shape[1] != width or value.dtype.kind != "f":
        raise BadPickle(f"{source}: holds a {value.dtype} array {value.shape}, expected float (T, {width})")
    if value.shape[0] == 0:
        raise BadPickle(f"{source}: holds no frames (0, {width})")
    if not np.isfinite(value).all():
        raise BadPickle(f"{source}: holds NaN or infinite values")
    if np.abs(value).max() > MAX_ABS:
        raise BadPickle(f"{source}: holds values beyond +-{MAX_ABS:g} (float16's range), not features")
    return np.ascontiguousarray(value, dtype=np.float32)
