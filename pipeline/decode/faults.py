"""The status rules: from what decoding observed about a clip to its status, message and faults.

:func:`classify` is pure (no I/O): every rule of the table in ``pipeline/decode/__init__.py`` is
here, testable on hand-made observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from pipeline.config import DecodeParams

STATUS_PRIORITY: tuple[str, ...] = (
    "corrupt",
    # The decoder's worker process died on the file twice (a native crash, the OOM killer): set by
    # pipeline.decode.writer, never by classify.
    "error",
    "too_short",
    "no_video_stream",
    "no_audio_stream",
    "silent_audio",
    "no_face",
)
STATUSES: tuple[str, ...] = (*STATUS_PRIORITY, "ok")


@dataclass
class Observations:
    """What decoding found in one file.

    ``errors``: why the file is corrupt (cannot open, a stream that fails to demux or decode,
    truncation...), in the order found. Stream presence is None when the file could not be probed.
    """

    errors: list[str] = field(default_factory=list)
    has_video_stream: bool | None = None
    has_audio_stream: bool | None = None
    duration: Fraction | None = None  # seconds, exact
    n_frames: int = 0
    n_face_frames: int = 0
    audio_dbfs: float | None = None  # None when no audio was decoded


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str
    faults: list[str]


def _rule_faults(obs: Observations, params: DecodeParams) -> dict[str, str]:
    """{fault: message} of every rule other than corrupt that the observations break."""
    found: dict[str, str] = {}
    if obs.has_video_stream is False and obs.has_audio_stream:
        found["no_video_stream"] = "no video stream (audio-only file)"
    if obs.has_audio_stream is False and obs.has_video_stream:
        found["no_audio_stream"] = "no audio stream"
    if obs.duration is not None and obs.duration < Fraction(params.min_duration_s):
        found["too_short"] = f"duration {float(obs.duration):.3f} s < min_duration_s {params.min_duration_s} s"
    if obs.audio_dbfs is not None and obs.audio_dbfs < params.silence_dbfs:
        found["silent_audio"] = f"audio level {obs.audio_dbfs:.1f} dBFS < silence_dbfs {params.silence_dbfs}"
    if obs.n_frames and obs.n_face_frames / obs.n_frames < params.min_face_fraction:
        found["no_face"] = (
            f"{obs.n_face_frames} of {obs.n_frames} frames have a face "
            f"({obs.n_face_frames / obs.n_frames:.2f} < min_face_fraction {params.min_face_fraction})"
        )
    return found


def classify(obs: Observations, params: DecodeParams) -> Verdict:
    """Every fault found, the status (the first fault in ``STATUS_PRIORITY``, else ``ok``) and the
    message (the faults' messages joined in that order, "" when ok)."""
    messages: dict[str, list[str]] = {}
    if obs.errors:
        messages["corrupt"] = list(obs.errors)
    for kind, message in _rule_faults(obs, params).items():
        messages[kind] = [message]
    kinds = [k for k in STATUS_PRIORITY if k in messages]
    message = "; ".join(m for k in kinds for m in messages[k])
    return Verdict(status=kinds[0] if kinds else "ok", message=message, faults=kinds)
