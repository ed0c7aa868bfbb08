"""The organisers' feature pickles as feature sources: the restricted loader refuses anything but a
numpy array (and runs nothing of it), the frames land on the pipeline's timeline, and the feature
stage turns every clip into a record (missing with the reason where its pickle is absent, refused
or malformed) without a model, the face crops or the decoded audio."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.hume import SideEffect, make_clips, wav2vec2_frames, write_pickle, write_release, write_stage_inputs
from pipeline.config import Params
from pipeline.features.audio.frames import pool_frames
from pipeline.features.hume import NOMINAL_VIT_FPS, pickle_path, place_vit, vit_rate, wav2vec2_times
from pipeline.features.hume.pickles import ALLOWED_GLOBALS, BadPickle, UnsafePickle, load_array
from pipeline.features.shards import read_features
from stages.features import main

from .conftest import REPO
from .test_features_stage import write_params

ARRAY = np.array([[0.5, -1.25, 2.0], [3.0, 4.5, -6.0]], np.float32)
# The same array pickled by numpy 2.2.6 (protocols 2, 4, 5): numpy._core names, which numpy 1 lacks.
NUMPY2_PICKLES = {
    2: (
        "gAJjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5j"
        "b2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwJLA4ZxCmNudW1weQpkdHlwZQpxC1gCAAAAZjRxDImI"
        "h3ENUnEOKEsDWAEAAAA8cQ9OTk5K/////0r/////SwB0cRBiiWgDWB0AAAAAAAA/AADCoMK/AAAAQAAAQEAAAMKQQAAAw4DDgHER"
        "aAWGcRJScRN0cRRiLg=="
    ),
    4: (
        "gASVowAAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsA"
        "hZRDAWKUh5RSlChLAUsCSwOGlGgDjAVkdHlwZZSTlIwCZjSUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYolDGAAAAD8A"
        "AKC/AAAAQAAAQEAAAJBAAADAwJR0lGIu"
    ),
    5: (
        "gAWVjgAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWGAAAAAAAAAAAAAA/AACgvwAAAEAAAEBA"
        "AACQQAAAwMCUjAVudW1weZSMBWR0eXBllJOUjAJmNJSJiIeUUpQoSwOMATyUTk5OSv////9K/////0sAdJRiSwJLA4aUjAFDlHSU"
        "UpQu"
    ),
}


# ----------------------------------------------------------------------------- restricted loader
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_loads_arrays_pickled_by_this_numpy(tmp_path: Path, protocol: int, dtype: str) -> None:
    value = np.asfortranarray(ARRAY.astype(dtype)) if protocol == 5 else ARRAY.astype(dtype)
    path = write_pickle(tmp_path / "a.pkl", value, protocol=protocol)
    loaded = load_array(path, width=3)
    assert loaded.dtype == np.float32 and loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, ARRAY)


@pytest.mark.parametrize("protocol", sorted(NUMPY2_PICKLES))
def test_loads_arrays_pickled_by_numpy_2(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "a.pkl"
    path.write_bytes(base64.b64decode(NUMPY2_PICKLES[protocol]))
    np.testing.assert_array_equal(load_array(path, width=3), ARRAY)


def test_a_hostile_pickle_is_refused_naming_file_and_global_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    evil = write_pickle(tmp_path / "evil.pkl", SideEffect(marker))
    with pytest.raises(UnsafePickle) as info:
        load_array(evil, width=3)
    assert f"{evil}: refused global fixtures.hume.touch" in str(info.value)
    assert not marker.exists()
    # The same bytes through plain pickle do run the payload: the refusal above is what prevents it.
    with open(evil, "rb") as handle:
        pickle.load(handle)  # noqa: S301 - the hazard this loader exists for, on our own payload
    assert marker.read_text() == "the pickle ran code\n"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        # os.system: refused by name, never imported or called.
        (b"cposix\nsystem\n(Vtouch /nonexistent/never\ntR.", "posix.system"),
        (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93.", "builtins.eval"),
        # A real array first, then the payload: the array's globals pass, the payload's does not.
        (pickle.dumps([ARRAY, SideEffect(Path("/nonexistent/never"))], protocol=4), "fixtures.hume.touch"),
        # An object array whose element is the payload.
        (
            pickle.dumps(np.array([SideEffect(Path("/nonexistent/never"))], dtype=object), protocol=2),
            "fixtures.hume.touch",
        ),
    ],
    ids=["os.system", "builtins.eval", "after-an-array", "inside-an-object-array"],
)
def test_any_other_global_is_refused(tmp_path: Path, payload: bytes, named: str) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickle, match=f"refused global {named}: a pickled numpy array needs only"):
        load_array(path, width=3)
    assert not Path("/nonexistent/never").exists()


def test_codecs_encode_is_latin1_of_a_string_only(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(UnsafePickle, match=r"refused _codecs.encode\(str, 'rot13'\)"):
        load_array(path, width=3)
    assert "_codecs.encode" in ALLOWED_GLOBALS and "numpy._core.multiarray._reconstruct" in ALLOWED_GLOBALS


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (ARRAY[:, :2], r"float32 array \(2, 2\), expected float \(T, 3\)"),
        (ARRAY[0], r"float32 array \(3,\), expected float \(T, 3\)"),
        (ARRAY[None], r"float32 array \(1, 2, 3\), expected float \(T, 3\)"),
        (ARRAY.astype(np.int64), r"int64 array \(2, 3\)"),
        (np.zeros((0, 3), np.float32), r"holds no frames \(0, 3\)"),
        (np.where(ARRAY > 4, np.nan, ARRAY), "NaN or infinite"),
        (ARRAY * 1e6, "beyond"),
        ({"vit": ARRAY}, "holds a dict, expected a numpy array"),
        (ARRAY.tolist(), "holds a list"),
    ],
)
def test_wrong_contents_are_bad_pickles(tmp_path: Path, value: object, problem: str) -> None:
    path = write_pickle(tmp_path / "x.pkl", value)
    with pytest.raises(BadPickle, match=problem):
        load_array(path, width=3)


def test_unreadable_files_are_bad_pickles(tmp_path: Path) -> None:
    whole = pickle.dumps(ARRAY, protocol=4)
    (tmp_path / "cut.pkl").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.pkl").write_text("Filename,Admiration\n00000,0.5\n")
    for name, problem in [("cut.pkl", "not a readable pickle"), ("text.pkl", "not a readable pickle")]:
        with pytest.raises(BadPickle, match=problem):
            load_array(tmp_path / name, width=3)
    with pytest.raises(BadPickle, match="cannot read it"):
        load_array(tmp_path, width=3)


# ------------------------------------------------------------------------------------- timeline
def test_vit_rate_from_duration_and_frame_times() -> None:
    assert vit_rate(12, 2.0) == 6.0 and vit_rate(31, 5.0) == 6.2
    assert vit_rate(12, None) == vit_rate(12, 0.0) == NOMINAL_VIT_FPS
    values = np.arange(24, dtype=np.float32).reshape(12, 2)
    same, times = place_vit(values, 2.0)
    assert same is values
    np.testing.assert_allclose(times, (np.arange(12) + 0.5) / 6.0, rtol=1e-6)
    assert times[-1] < 2.0 and times[0] > 0  # every frame inside the clip


def test_wav2vec2_frames_pool_into_the_pipelines_audio_bins() -> None:
    n = wav2vec2_frames(2.0)  # 99 frames for 2 s of 16 kHz audio
    assert n == 99
    np.testing.assert_allclose(wav2vec2_times(3), [0.01, 0.03, 0.05], rtol=1e-6)
    values = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    pooled, times = pool_frames(values, wav2vec2_times(n), 5.0)
    assert pooled.shape == (10, 4)
    np.testing.assert_allclose(times, (np.arange(10) + 0.5) / 5.0, rtol=1e-6)
    np.testing.assert_allclose(pooled[0], values[:10].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(pooled[-1], values[90:].mean(axis=0), rtol=1e-5)  # the last bin: 9 frames


def test_pickle_path_beside_the_video_folder_then_one_up(tmp_path: Path) -> None:
    clips = make_clips({"train": 1, "test": 2})
    root = write_release(tmp_path, clips)
    assert pickle_path(root / "raw" / "00000.mp4", "vit") == root / "vit" / "00000.pkl"
    assert pickle_path(root / "test_data" / "raw" / "12660.mp4", "wav2vec2") == root / "test_data/wav2vec2/12660.pkl"
    (root / "test_data" / "vit" / "12661.pkl").rename(root / "vit" / "12661.pkl")  # test features at the top
    assert pickle_path(root / "test_data" / "raw" / "12661.mp4", "vit") == root / "vit" / "12661.pkl"
    (root / "vit" / "00000.pkl").unlink()
    assert pickle_path(root / "raw" / "00000.mp4", "vit") is None


# ------------------------------------------------------------------------------ the feature stage
@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A miniature release (6 train, 2 valid, 2 test) with a hostile, a truncated, a missing and a
    wrong-width ViT pickle; manifest and decode status written as the stages write them. Every model,
    face-crop and decoded-audio reader is made to fail: the organiser sources must need none."""
    clips = make_clips({"train": 6, "valid": 2, "test": 2})
    root = write_release(tmp_path / "release", clips)
    marker = tmp_path / "ran.txt"
    write_pickle(root / "vit" / "00001.pkl", SideEffect(marker))
    whole = (root / "vit" / "00002.pkl").read_bytes()
    (root / "vit" / "00002.pkl").write_bytes(whole[:100])
    (root / "vit" / "00003.pkl").unlink()
    write_pickle(root / "vit" / "00004.pkl", np.zeros((12, 383), np.float32))
    durations = {c.stem: c.duration_s for c in clips} | {"00005": None}  # 00005: decode found no duration
    write_stage_inputs(root, tmp_path, durations)

    def refuse(*args, **kwargs):
        raise AssertionError("the organiser sources must not load a model or read decoded media")

    import pipeline.decoded
    import pipeline.features.audio
    import pipeline.features.visual
    import pipeline.whisper.encoder_states

    for owner, name in [
        (pipeline.features.visual, "load_mini_xception"), (pipeline.features.visual, "FaceGeometry"),
        (pipeline.features.audio, "WhisperEncoderExtractor"), (pipeline.features.audio, "HFAudioExtractor"),
        (pipeline.decoded, "iter_clip_frames"), (pipeline.decoded, "iter_clip_audio"),
        (pipeline.whisper.encoder_states, "index"),
    ]:  # fmt: skip
        monkeypatch.setattr(owner, name, refuse)
    return {"root": root, "clips": clips, "marker": marker, "tmp": tmp_path, "durations": durations}


def _run_stage(release: dict, modality: str, model: str, out: Path, *, executor: str = "local") -> int:
    tmp = release["tmp"]
    key = f"{modality}__model"
    params = write_params(tmp / f"{modality}.yaml", clips_per_shard=3, **{key: model})
    raw = yaml.safe_load(params.read_text())
    raw["runtime"]["executor"] = executor
    params.write_text(yaml.safe_dump(raw))
    return main(
        [
            "--params", str(params), "--modality", modality, "--manifest", str(tmp / "manifest.parquet"),
            "--decoded", str(tmp / "no-decoded"), "--status", str(tmp / "decode_status.parquet"),
            "--asr", str(tmp / "no-transcripts.parquet"), "--encoder", str(tmp / "no-encoder"), "--out", str(out),
        ]
    )  # fmt: skip


def test_visual_stage_on_organiser_pickles(release: dict, capsys: pytest.CaptureFixture) -> None:
    out = release["tmp"] / "visual"
    assert _run_stage(release, "visual", "hume-vit", out) == 0
    captured = capsys.readouterr()
    evil = release["root"] / "vit" / "00001.pkl"
    assert f"warning: 00001: {evil}: refused global fixtures.hume.touch" in captured.err
    assert not release["marker"].exists()  # the hostile pickle's payload never ran
    records = {r.clip_id: r for r in read_features(out, modality="visual")}
    assert len(records) == 10
    reasons = {c: r.reason for c, r in records.items() if not r.available}
    assert sorted(reasons) == ["00001", "00002", "00003", "00004"]
    assert reasons["00001"] == f"unsafe pickle: {evil}: refused global fixtures.hume.touch (nothing of it ran)"
    assert reasons["00002"].startswith("malformed pickle: vit/00002.pkl: not a readable pickle")
    assert reasons["00003"] == "no organiser pickle: no vit/<stem>.pkl beside the clip's video"
    assert (
        reasons["00004"] == "malformed pickle: vit/00004.pkl: holds a float32 array (12, 383), expected float (T, 384)"
    )
    for clip in release["clips"]:
        if clip.stem in reasons:
            continue
        base = release["root"] / ("test_data" if clip.split == "test" else "")
        expected = pickle.loads((base / "vit" / f"{clip.stem}.pkl").read_bytes())  # noqa: S301 - our own file
        record = records[clip.stem]
        np.testing.assert_allclose(record.values, expected.astype(np.float16), rtol=0, atol=0)
        assert record.valid.all()
        duration = release["durations"][clip.stem]
        rate = len(expected) / duration if duration else NOMINAL_VIT_FPS
        np.testing.assert_allclose(record.times, (np.arange(len(expected)) + 0.5) / rate, rtol=1e-6)
    assert records["12661"].available  # test clips' pickles under test_data/vit/
    assert "computed 4, up to date 0" in captured.out and "hume-vit (384-d, float16)" in captured.out

    # Rerun: nothing changes. One pickle changed: only the shard holding its clip is computed again.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _run_stage(release, "visual", "hume-vit", out) == 0
    assert "computed 0, up to date 4" in capsys.readouterr().out
    write_pickle(release["root"] / "vit" / "00004.pkl", np.ones((12, 384), np.float32))  # fixed by the user
    assert _run_stage(release, "visual", "hume-vit", out) == 0
    assert "computed 1, up to date 3" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert [n for n in after if after[n] != before[n]] == ["train-00001.parquet"]
    assert next(r for r in read_features(out) if r.clip_id == "00004").available


def test_audio_stage_pools_organiser_wav2vec2_to_the_audio_rate(release: dict, capsys: pytest.CaptureFixture) -> None:
    out = release["tmp"] / "audio"
    (release["root"] / "wav2vec2" / "00007.pkl").unlink()
    assert _run_stage(release, "audio", "hume-wav2vec2", out) == 0
    records = {r.clip_id: r for r in read_features(out, modality="audio")}
    assert {c for c, r in records.items() if not r.available} == {"00007"}
    assert records["00007"].reason == "no organiser pickle: no wav2vec2/<stem>.pkl beside the clip's video"
    pool_fps = Params().features.audio.pool_fps
    for clip in release["clips"]:
        if clip.stem == "00007":
            continue
        base = release["root"] / ("test_data" if clip.split == "test" else "")
        frames = pickle.loads((base / "wav2vec2" / f"{clip.stem}.pkl").read_bytes())  # noqa: S301 - our own file
        assert len(frames) == wav2vec2_frames(clip.duration_s)
        pooled, times = pool_frames(frames, wav2vec2_times(len(frames)), pool_fps)
        record = records[clip.stem]
        assert len(record.times) == {2.0: 10, 3.5: 18}[clip.duration_s]  # 5 fps bins over the clip
        np.testing.assert_allclose(record.values, pooled.astype(np.float16), rtol=0, atol=0)
        np.testing.assert_allclose(record.times, times, rtol=1e-6)
    assert "hume-wav2vec2 (768-d, float16)" in capsys.readouterr().out


def test_a_pool_worker_reads_the_pickles_as_the_stage_does(release: dict) -> None:
    """What a Ray worker runs (``pipeline.features.pooled``), in this process: the same records."""
    from pipeline.config import VisualFeatureParams
    from pipeline.features import pooled
    from pipeline.features.runner import ShardTask

    tmp = release["tmp"]
    assert _run_stage(release, "visual", "hume-vit", tmp / "local") == 0
    spec = pooled.ExtractorSpec(
        "visual", VisualFeatureParams(model="hume-vit"), "cpu", str(tmp / "no-decoded"),
        str(tmp / "decode_status.parquet"), str(tmp / "none.parquet"), None, str(tmp / "manifest.parquet"),
    )  # fmt: skip
    pooled.init_worker(spec)
    task = ShardTask("train-00000.parquet", ["00000", "00001", "00002"], "fingerprint")
    (tmp / "pooled").mkdir()
    outcome = pooled.shard_unit(task, tmp / "pooled", "float16", 2, frozenset(), frozenset())
    assert outcome.available == 1 and sum(outcome.reasons.values()) == 2
    local = {r.clip_id: r for r in read_features(tmp / "local") if r.clip_id in task.clip_ids}
    for record in read_features(tmp / "pooled"):
        np.testing.assert_array_equal(record.values, local[record.clip_id].values)
        np.testing.assert_array_equal(record.times, local[record.clip_id].times)
        assert record.reason == local[record.clip_id].reason
    assert not release["marker"].exists()


@pytest.mark.slow  # starts a local Ray; the pool worker's code runs in-process in the test above
def test_the_stage_on_ray_writes_the_local_bytes(release: dict, local_ray: None) -> None:
    tmp = release["tmp"]
    for modality, model in [("visual", "hume-vit"), ("audio", "hume-wav2vec2")]:
        assert _run_stage(release, modality, model, tmp / f"local-{modality}") == 0
        assert _run_stage(release, modality, model, tmp / f"ray-{modality}", executor="ray") == 0
        local, ray = sorted((tmp / f"local-{modality}").iterdir()), sorted((tmp / f"ray-{modality}").iterdir())
        assert [p.name for p in local] == [p.name for p in ray]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(local, ray, strict=True))
    assert not release["marker"].exists()


def test_predict_refuses_a_model_trained_on_organiser_features(tmp_path: Path) -> None:
    from fixtures.models import untrained_model
    from pipeline.cli import UsageError
    from pipeline.config import parse_params
    from pipeline.predict.predictor import Predictor

    params = parse_params({"features": {"visual": {"model": "hume-vit"}, "audio": {"model": "hume-wav2vec2"}}})
    model = untrained_model(tmp_path / "model", params)
    with pytest.raises(
        UsageError, match=r"organisers' pre-extracted features \(visual: hume-vit, audio: hume-wav2vec2\)"
    ):
        Predictor(params=params, model_dir=model)


def test_default_params_never_read_a_pickle(release: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.features.inputs
    from pipeline.config import load_params
    from pipeline.features.hume import SOURCES
    from pipeline.features.inputs import provider

    shipped = load_params(REPO / "params.yaml")
    assert shipped.features.visual.model not in SOURCES and shipped.features.audio.model not in SOURCES

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle source was opened with the default params")

    monkeypatch.setattr(pipeline.features.inputs, "pickle_inputs", refuse)
    tmp = release["tmp"]
    for modality, model in [("visual", "fer-mini-xception+face-mesh-geometry"), ("audio", "base-int8")]:
        provider(
            modality, manifest=tmp / "manifest.parquet", decoded=tmp / "no-decoded",
            status=tmp / "decode_status.parquet", asr=tmp / "manifest.parquet", model=model,
        )  # fmt: skip
    with pytest.raises(AssertionError, match="pickle source was opened"):
        provider("visual", manifest="m", decoded="d", status="s", asr="a", model="hume-vit")
