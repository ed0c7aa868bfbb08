"""The regular 30 s cover of a clip (pipeline/whisper/windows.py) and the speech windows ASR decodes
(pipeline/asr/speech_windows.py): no model needed."""

from __future__ import annotations

import numpy as np
from faster_whisper.audio import pad_or_trim

from pipeline.asr.speech_windows import clip_timestamps
from pipeline.whisper import windows
from pipeline.whisper.geometry import SAMPLE_RATE, real_frames


def test_cover_windows_are_faster_whispers_grid_windows_and_nothing_else() -> None:
    n = 75 * SAMPLE_RATE + 123
    mel = np.random.rand(80, n // 160 + 1).astype(np.float32)
    content = mel.shape[1] - 1
    assert windows.count(n) == 3
    for seek, expected in ((0, 0), (3000, 1), (6000, 2), (2900, None), (3001, None)):
        # As generate_segments cuts a window at ``seek`` without clip_timestamps.
        segment = pad_or_trim(mel[:, seek : seek + min(3000, content - seek)])
        assert windows.which(segment, mel, n) == expected
        if expected is not None:
            np.testing.assert_array_equal(windows.window(mel, expected), segment)
    # A window at a grid point but cut short (the end of a clip_timestamps run) is not the cover's.
    assert windows.which(pad_or_trim(mel[:, 3000:4000]), mel, n) is None
    assert sum(windows.real_window_frames(n, k) for k in range(3)) == real_frames(n)


def test_clip_timestamps_cover_the_runs_of_speech_windows() -> None:
    assert clip_timestamps([True, False, True, True, False]) == [0.0, 30.0, 60.0, 120.0]
    assert clip_timestamps([False, True]) == [30.0, 60.0]
    assert clip_timestamps([False, False]) == []
