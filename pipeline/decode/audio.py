"""Audio decoding: mono float32 at the decode rate on the clip's timeline (levels: pipeline/levels.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np

from pipeline.decode.probe import StreamLog, decoded_frames

# The levels (pipeline/levels.py) are shared with ASR's speech test, which must not import decode.
from pipeline.levels import active_level_dbfs


def decode_audio(path: str, index: int, *, sample_rate: int, origin: Fraction, log: StreamLog) -> np.ndarray | None:
    """(N,) float32 mono at ``sample_rate`` starting at ``origin`` (clip timeline), or None when
    no frame decodes. Not yet cropped to the clip duration."""
    chunks: list[np.ndarray] = []
    start: Fraction | None = None
    with av.open(path) as container:
        stream = container.streams[index]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in decoded_frames(container, stream, log):
            if start is None:
                start = Fraction(frame.pts) * frame.time_base if frame.pts is not None else origin
            try:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            except (av.error.FFmpegError, ValueError) as error:  # e.g. a mid-stream layout change
                log.record(error)
        if start is None:
            return None
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shift = math.floor((start - origin) * sample_rate + Fraction(1, 2))
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    return samples.astype(np.float32, copy=False)


def fit_to_duration(samples: np.ndarray, duration: Fraction, sample_rate: int) -> np.ndarray:
    """Crop or zero-pad to ``floor(duration * sample_rate + 1/2)`` samples (drops AAC's end padding)."""
    n_out = math.floor(duration * sample_rate + Fraction(1, 2))
    return samples[:n_out] if len(samples) >= n_out else np.pad(samples, (0, n_out - len(samples)))


def repair_nonfinite(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """(samples with every NaN/Inf set to 0, how many there were); the same array when all are finite.

    A float WAV can hold NaN/Inf; one of them makes the RMS level NaN or -200 dBFS and the
    Whisper models' input garbage, so they are replaced before anything reads the track.
    """
    bad = ~np.isfinite(samples)
    count = int(np.count_nonzero(bad))
    if not count:
        return samples, 0
    repaired = samples.copy()
    repaired[bad] = 0.0
    return repaired, count


# How much of each candidate stream is decoded to tell a silent track from one with signal: a
# multi-track recorder's unused input is digital silence (or a DC offset) from its first sample,
# so a few seconds decide it at a few milliseconds of CPU per stream.
SIGNAL_CHECK_S = 5.0


def audio_head(path: str, index: int, *, sample_rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of audio stream ``index``, mono float32 at ``sample_rate`` (shorter
    when the stream is, empty when nothing decodes)."""
    wanted = round(seconds * sample_rate)
    chunks: list[np.ndarray] = []
    have = 0
    with av.open(path) as container:
        stream = container.streams[index]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in decoded_frames(container, stream, StreamLog("audio")):
            try:
                outs = resampler.resample(frame)
            except (av.error.FFmpegError, ValueError):
                continue  # the full decode counts it; here it only shortens the look
            for out in outs:
                chunks.append(out.to_ndarray().reshape(-1))
                have += chunks[-1].size
            if have >= wanted:
                break
    return np.concatenate(chunks)[:wanted].astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


def choose_audio_stream(path: str, candidates: list[int], *, sample_rate: int, silence_dbfs: float) -> tuple[int, str]:
    """(stream index, note for the status message) of the audio stream to decode.

    ``candidates`` in order of preference (``Probe.audio_candidates``: default disposition first).
    One candidate is taken as it is (note ""). Of several, the first whose first ``SIGNAL_CHECK_S``
    seconds reach ``silence_dbfs`` (active level, DC removed) wins: a recorder that marks its silent
    first track as default keeps the speech of its second; when none has signal, the first.
    """
    if len(candidates) <= 1:
        return (candidates[0] if candidates else -1), ""
    silent = []
    for index in candidates:
        try:
            head = audio_head(path, index, sample_rate=sample_rate, seconds=SIGNAL_CHECK_S)
        except Exception:  # noqa: BLE001 - an unreadable candidate is skipped; the chosen one is decoded in full
            head = np.zeros(0, np.float32)
        if head.size and active_level_dbfs(np.nan_to_num(head), sample_rate) >= silence_dbfs:
            skipped = f"; silent: {', '.join(f'#{i}' for i in silent)}" if silent else ""
            return index, f"audio: stream #{index} of {len(candidates)} audio streams (the first with signal{skipped})"
        silent.append(index)
    return candidates[0], f"audio: stream #{candidates[0]} of {len(candidates)} audio streams (none has signal)"
