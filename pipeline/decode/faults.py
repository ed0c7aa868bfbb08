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
    "partial",
    "no_video_stream",
    "no_audio_stream",
    "silent_audio",
    "no_face",
)
STATUSES: tuple[str, ...] = (*STATUS_PRIORITY, "ok")

# Above this fraction of NaN/Inf samples the audio track is dropped rather than repaired: a few
# bad samples (a glitch in a float WAV) are noise, set to 0 without changing what the track
# says; at 1% (10 ms in every second) zeros fill whole syllables and the track no longer holds
# the speech the audio and text models would read.
MAX_NONFINITE_FRACTION = 0.01


@dataclass
class Observations:
    """What decoding found in one file.

    ``errors``: what was lost (cannot open, a stream that fails to demux or decode, truncation...),
    in the order found. Stream presence is None when the file could not be probed.
    ``audio_samples``: length of the decoded audio track (0 when none decoded); ``audio_nonfinite``:
    how many of them were NaN/Inf (the decoder sets them to 0, or drops the track, see
    :func:`audio_unusable`); ``audio_dbfs`` (RMS) and ``audio_active_dbfs`` (loudest 10% of 50 ms
    frames) are levels after that repair; ``audio_speech`` is whether Silero VAD found speech in
    the level-normalised track (None when not checked: only tracks between ``silence_dbfs`` and
    ``speech_check_dbfs`` are). ``notes``: what the message should say even when nothing is wrong
    (which of several audio streams was decoded).
    """

    errors: list[str] = field(default_factory=list)
    has_video_stream: bool | None = None
    has_audio_stream: bool | None = None
    duration: Fraction | None = None  # seconds, exact
    n_frames: int = 0
    n_face_frames: int = 0
    audio_dbfs: float | None = None  # None when no audio was decoded
    audio_active_dbfs: float | None = None
    audio_speech: bool | None = None
    audio_samples: int = 0
    audio_nonfinite: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str
    faults: list[str]


def audio_unusable(nonfinite: int, samples: int) -> bool:
    """More than ``MAX_NONFINITE_FRACTION`` of the track is NaN/Inf: drop it instead of repairing."""
    return nonfinite > MAX_NONFINITE_FRACTION * samples


def _losses(obs: Observations, sample_rate: int) -> list[str]:
    """What decoding lost or repaired: decode errors, truncation, NaN/Inf audio samples (counted in
    the decoded track: resampling spreads one bad source sample over a few dozen)."""
    lost = list(obs.errors)
    if obs.audio_nonfinite:
        what = f"audio: {obs.audio_nonfinite:,} of {obs.audio_samples:,} samples at {sample_rate} Hz were NaN/Inf"
        if audio_unusable(obs.audio_nonfinite, obs.audio_samples):
            lost.append(f"{what} (over {MAX_NONFINITE_FRACTION:.0%}): audio dropped")
        else:
            lost.append(f"{what}, set to 0")
    return lost


def _damage(obs: Observations, sample_rate: int) -> dict[str, list[str]]:
    """{"corrupt": messages} when nothing usable decoded, {"partial": messages} when some frames or
    the audio did (they are used, and the message says so), {} when nothing was lost."""
    lost = _losses(obs, sample_rate)
    if not lost:
        return {}
    kept = [f"{obs.n_frames} frames"] if obs.n_frames else []
    if obs.audio_samples and not audio_unusable(obs.audio_nonfinite, obs.audio_samples):
        kept.append("the audio")
    if not kept:
        return {"corrupt": lost}
    return {"partial": [*lost, f"using what decoded: {' and '.join(kept)}"]}


def needs_speech_check(active_dbfs: float, params: DecodeParams) -> bool:
    """Whether the silence rule needs to know if the track holds speech (``Observations.audio_speech``)."""
    return params.silence_dbfs <= active_dbfs < params.speech_check_dbfs


def silence(obs: Observations, params: DecodeParams) -> str:
    """The silent_audio message, "" when the track is not silent: its loudest frames are below
    ``silence_dbfs``, or below ``speech_check_dbfs`` with no speech found by VAD."""
    active = obs.audio_active_dbfs
    if active is None:
        return ""
    level = f"audio level {active:.1f} dBFS (loudest 10% of 50 ms frames)"
    if active < params.silence_dbfs:
        return f"{level} < silence_dbfs {params.silence_dbfs}"
    if needs_speech_check(active, params) and obs.audio_speech is False:
        return f"{level} < speech_check_dbfs {params.speech_check_dbfs} and no speech found by VAD"
    return ""


def _rule_faults(obs: Observations, params: DecodeParams) -> dict[str, str]:
    """{fault: message} of every rule other than corrupt that the observations break."""
    found: dict[str, str] = {}
    if obs.has_video_stream is False and obs.has_audio_stream:
        found["no_video_stream"] = "no video stream (audio-only file)"
    if obs.has_audio_stream is False and obs.has_video_stream:
        found["no_audio_stream"] = "no audio stream"
    if obs.duration is not None and obs.duration < Fraction(params.min_duration_s):
        found["too_short"] = f"duration {float(obs.duration):.3f} s < min_duration_s {params.min_duration_s} s"
    silent = silence(obs, params)
    if silent:
        found["silent_audio"] = silent
    if obs.n_frames and obs.n_face_frames / obs.n_frames < params.min_face_fraction:
        found["no_face"] = (
            f"{obs.n_face_frames} of {obs.n_frames} frames have a face "
            f"({obs.n_face_frames / obs.n_frames:.2f} < min_face_fraction {params.min_face_fraction})"
        )
    return found


def classify(obs: Observations, params: DecodeParams) -> Verdict:
    """Every fault found, the status (the first fault in ``STATUS_PRIORITY``, else ``ok``) and the
    message (the faults' messages joined in that order, then ``notes``; "" when ok without notes).

    A file that lost something (``errors``, NaN/Inf audio) is ``corrupt`` when nothing usable
    decoded (no sampled frame and no usable audio: every modality is missing) and ``partial``
    when some did: what decoded is used, the message says what was lost and what is used."""
    messages = _damage(obs, params.sample_rate)
    for kind, message in _rule_faults(obs, params).items():
        messages[kind] = [message]
    kinds = [k for k in STATUS_PRIORITY if k in messages]
    message = "; ".join([*(m for k in kinds for m in messages[k]), *obs.notes])
    return Verdict(status=kinds[0] if kinds else "ok", message=message, faults=kinds)
