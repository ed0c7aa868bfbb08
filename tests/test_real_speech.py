"""Real speech is never dropped: the silence rule and ASR on RAVDESS made quiet (fixtures/speech.py).

Quiet speech (attenuated 20-25 dB, a second of room tone or silence at both ends) must stay
usable: not ``silent_audio`` in decode, transcribed by ASR as well as a bare faster-whisper call
transcribes the same file. Silence and near-silence must stay ``silent_audio``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures.speech import SpeechFile, bare_transcripts, quiet_copy, ravdess, read_wav, silence_corpus
from pipeline.asr import AsrClip, FasterWhisperRecognizer, transcribe_clips, word_errors, words
from pipeline.config import AsrParams, DecodeParams
from pipeline.decode import decode_clip
from pipeline.levels import active_level_dbfs

from .conftest import REALDATA

DECODE = DecodeParams()
ASR = AsrParams()
OLD_RULE_RMS_DBFS = -60.0  # the rule this replaces: whole-clip RMS below -60 dBFS


@pytest.fixture(scope="module")
def originals() -> list[SpeechFile]:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent (it sits beside the repo in CI)")
    return ravdess(REALDATA / "audio" / "ravdess")


@pytest.fixture(scope="module")
def quietest(originals: list[SpeechFile], tmp_path_factory: pytest.TempPathFactory) -> list[SpeechFile]:
    """The 6 quietest deliveries (calm, sad...) attenuated 25 dB with a second of silence each end."""
    levels = [active_level_dbfs(read_wav(f.path).mean(axis=1), 48_000) for f in originals]
    chosen = [originals[i] for i in np.argsort(levels)[:6]]
    out = tmp_path_factory.mktemp("quietest")
    return [quiet_copy(f, out, attenuation_db=25.0, pad="zeros") for f in chosen]


@pytest.mark.parametrize("attenuation_db, pad", [(20.0, "room"), (25.0, "zeros"), (25.0, "room")])
def test_quiet_real_speech_is_not_silent(
    originals: list[SpeechFile], tmp_path: Path, attenuation_db: float, pad: str
) -> None:
    copies = [quiet_copy(f, tmp_path, attenuation_db=attenuation_db, pad=pad) for f in originals[::4]]
    reports = [decode_clip(c.path, DECODE, clip_id=c.path.stem).report for c in copies]
    assert all(r.faults == ["no_video_stream"] for r in reports), [r.message for r in reports if r.faults[1:]]
    # The case is a hard one: the whole-clip RMS rule dropped most of these.
    assert sum(r.audio_dbfs < OLD_RULE_RMS_DBFS for r in reports) >= len(reports) // 2


def test_silence_and_near_silence_stay_silent(tmp_path: Path) -> None:
    for name, path in silence_corpus(tmp_path).items():
        report = decode_clip(path, DECODE, clip_id=name).report
        assert "silent_audio" in report.faults, (name, report.audio_active_dbfs, report.message)
        assert report.has_audio


def test_silence_rule_asks_vad_only_in_the_quiet_band(tmp_path: Path) -> None:
    """Hum at -70 dBFS is louder than silence_dbfs: VAD decides, and says no speech."""
    hum = decode_clip(silence_corpus(tmp_path)["hum50_m70"], DECODE, clip_id="hum").report
    assert DECODE.silence_dbfs <= hum.audio_active_dbfs < DECODE.speech_check_dbfs
    assert "no speech found by VAD" in hum.message


def bare_texts(files: list[SpeechFile]) -> list[str]:
    options = dict(model=ASR.model, compute_type=ASR.compute_type, language=ASR.language, beam_size=ASR.beam_size)
    return bare_transcripts([f.path for f in files], **options)


def _as_well_as_a_bare_call(files: list[SpeechFile]) -> None:
    decoded = [decode_clip(f.path, DECODE, clip_id=f.path.stem) for f in files]
    clips = [AsrClip(d.report.clip_id, d.audio.samples, d.audio.sample_rate, d.report.faults) for d in decoded]
    rows = list(transcribe_clips(clips, ASR, device="cpu", workers=1))
    assert [r.status for r in rows] == ["ok"] * len(files)
    ours = sum(word_errors(words(f.transcript), words(r.text)) for f, r in zip(files, rows, strict=True))
    bare = sum(word_errors(words(f.transcript), words(t)) for f, t in zip(files, bare_texts(files), strict=True))
    assert ours <= bare, (ours, bare, [r.text for r in rows])


def test_the_quietest_delivery_transcribed_as_well_as_by_a_bare_call(quietest: list[SpeechFile]) -> None:
    _as_well_as_a_bare_call(quietest[:1])


@pytest.mark.slow  # six real-speech files through decode, ASR and a bare faster-whisper call
def test_quiet_speech_transcribed_as_well_as_by_a_bare_call(quietest: list[SpeechFile]) -> None:
    _as_well_as_a_bare_call(quietest)


def test_vad_that_keeps_nothing_falls_back_to_the_whole_clip(originals: list[SpeechFile], tmp_path: Path) -> None:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    # 40 dB down: Silero finds no speech at this level, Whisper (level-normalised log-mel) still does.
    quiet = quiet_copy(originals[0], tmp_path, attenuation_db=40.0, pad="zeros")
    samples = decode_clip(quiet.path, DECODE, clip_id="quiet").audio.samples
    assert get_speech_timestamps(samples, VadOptions()) == []
    recognizer = FasterWhisperRecognizer(
        model=ASR.model, language="en", beam_size=5, vad=True, compute_type="int8", device="cpu", cpu_threads=2
    )
    _, segments = recognizer.recognize(samples)
    heard = words(" ".join(s.text for s in segments))
    assert word_errors(words(quiet.transcript), heard) <= 1, heard
