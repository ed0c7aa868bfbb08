"""Which 30 s windows of a long clip hold speech, so Whisper decodes only those (``asr.skip_speechless``).

Without it Whisper decodes every window of a long track, music and noise included, and falls back
through its temperatures on each (the decoder, not the encoder, is most of that time). The test is
decode's silence check (pipeline/decode/speech.py, levels from pipeline/decode/audio.py) applied per
window: Silero VAD on the window scaled so that its loudest frames sit at a speaking level, which
found speech in all 480 real speech tracks of docs/silence-and-speech.md, quiet copies 30 dB down
included, and none in hum or noise. The levels come from ``pipeline/levels.py`` (numpy only), not
from decode: importing any decode module imports all of decode, and ASR would then rerun on every
change to decode's code. Each window is tested with ``MARGIN_S`` of its
neighbours on both sides, so a word cut by a window boundary counts on both.

Clips of one window are never tested: they are decoded as the bare faster-whisper call decodes
them (a short clip of vocal bursts or quiet speech keeps whatever text Whisper finds).
"""

from __future__ import annotations

import numpy as np

from pipeline.levels import active_level_dbfs, to_speaking_level
from pipeline.whisper import windows
from pipeline.whisper.geometry import SAMPLE_RATE, WINDOW_SAMPLES

MARGIN_S = 1.0
# Shorter detections do not count: on the music of benchmarks/bench_long_asr.py Silero's only
# false detections were blips of 32 ms (after removing its padding); a spoken word lasts longer.
MIN_SPEECH_S = 0.2


def levelled(samples: np.ndarray) -> np.ndarray:
    """16 kHz ``samples`` at a speaking level (``pipeline.levels``, as decode's silence check)."""
    return to_speaking_level(samples, active_level_dbfs(samples, SAMPLE_RATE))


def speech_spans(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) samples of the speech Silero VAD (faster-whisper's, default options) finds in
    the levelled ``samples``, without the padding it adds on both sides of each; detections shorter
    than ``MIN_SPEECH_S`` are left out."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions()
    pad = options.speech_pad_ms * SAMPLE_RATE // 1000
    found = get_speech_timestamps(levelled(samples), options)
    shortest = 2 * pad + round(MIN_SPEECH_S * SAMPLE_RATE)
    return [(s["start"] + pad, s["end"] - pad) for s in found if s["end"] - s["start"] >= shortest]


def speech_in_windows(samples: np.ndarray) -> list[bool]:
    """(N,) 16 kHz float32 -> per cover window, whether levelled Silero VAD finds speech in it.

    VAD runs on the window with ``MARGIN_S`` of its neighbours, for context and so that a word cut
    by the boundary counts on both sides; speech that lies wholly in the margin does not count (the
    window beside a stretch of speech is not decoded for the last second of it)."""
    margin = round(MARGIN_S * SAMPLE_RATE)
    found = []
    for k in range(windows.count(len(samples))):
        start, end = k * WINDOW_SAMPLES, min(len(samples), (k + 1) * WINDOW_SAMPLES)
        first = max(0, start - margin)
        spans = speech_spans(samples[first : end + margin])
        found.append(any(first + a < end and first + b > start for a, b in spans))
    return found


def clip_timestamps(speech: list[bool]) -> list[float]:
    """faster-whisper's ``clip_timestamps`` (start, end, start, end, ... in seconds) over the runs of
    windows with speech; within a run the decoder seeks as it always does. The last run may end
    past the clip: faster-whisper stops at the clip's last mel frame."""
    window_s = WINDOW_SAMPLES / SAMPLE_RATE
    stamps: list[float] = []
    for k, has in enumerate(speech):
        if not has:
            continue
        if stamps and stamps[-1] == k * window_s:
            stamps[-1] = (k + 1) * window_s
        else:
            stamps += [k * window_s, (k + 1) * window_s]
    return stamps
