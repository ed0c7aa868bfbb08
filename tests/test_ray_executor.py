"""runtime.executor: ray on a local Ray (127.0.0.1 only, one per session): decode, asr and the three
feature stages on a slice of the demo write the same bytes as the local executor, also when a
worker is killed mid-run; a clip that kills its worker every time gets status ``error``."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.asr import AsrClip, transcribe_clips
from pipeline.config import AsrParams, DecodeParams, Params
from pipeline.decode import decode_manifest
from pipeline.decoded import iter_clip_audio
from pipeline.features.pooled import PooledShards
from pipeline.features.runner import CRASHED, INCOMPLETE_PREFIX, ShardTask, build_shards
from pipeline.features.shards import read_features, shard_fingerprint
from pipeline.runtime.devices import usable_cpus
from pipeline.runtime.executors import LOCAL, Executor
from stages import asr, decode, features, ingest, make_demo

from . import dying
from .conftest import REPO
from .test_asr import _KillsWorker
from .test_decode import CrashingPath, shard_files

MODALITIES = ("visual", "audio", "text")
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _ray_executor(cpus: int = 1) -> Executor:
    from pipeline.runtime.executors.ray import RayExecutor

    return RayExecutor(cpus=cpus)


# ------------------------------------------------------------------------------- the demo slice
def _write_params(path: Path, root: Path, executor: str) -> Path:
    raw = Params().model_dump(mode="json")
    raw["data"]["root"] = str(root / "demo")
    raw["demo"].update(seed=3, n_train=2, n_valid=2, n_test=2, min_seconds=2.0, max_seconds=3.0)
    raw["decode"]["clips_per_shard"] = 3
    raw["asr"]["model"] = "tiny.en"  # the executor, not accuracy, is under test
    raw["features"]["audio"]["whisper_model"] = "tiny.en"
    raw["features"]["clips_per_shard"] = 2
    raw["runtime"]["executor"] = executor
    path.write_text(yaml.safe_dump(raw))
    return path


class Run:
    """The stages' command lines on one output folder, with one params file."""

    def __init__(self, root: Path, params: Path, out: Path) -> None:
        self.root, self.params, self.out = root, params, out
        self.decoded, self.status = out / "decoded", out / "status.parquet"
        self.asr, self.encoder = out / "transcripts.parquet", out / "encoder"

    def decode(self) -> None:
        manifest = str(self.root / "manifest.parquet")
        argv = ["--params", str(self.params), "--manifest", manifest, "--out", str(self.decoded)]
        assert decode.main([*argv, "--status", str(self.status), "--timeline", str(self.out / "timeline.parquet")]) == 0

    def transcribe(self, decoded: Path, status: Path) -> None:
        argv = ["--params", str(self.params), "--decoded", str(decoded), "--status", str(status)]
        assert asr.main([*argv, "--out", str(self.asr), "--encoder-out", str(self.encoder)]) == 0

    def features(self, modality: str, inputs: Run) -> Path:
        out = self.out / "features" / modality
        argv = ["--params", str(self.params), "--modality", modality, "--manifest", str(self.root / "manifest.parquet")]
        argv += ["--decoded", str(inputs.decoded), "--status", str(inputs.status), "--asr", str(inputs.asr)]
        argv += ["--encoder", str(inputs.encoder)]
        assert features.main([*argv, "--out", str(out)]) == 0
        return out


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """12 demo clips (6 with the planted faults) through every heavy stage on the local executor."""
    root = tmp_path_factory.mktemp("ray-slice")
    params = _write_params(root / "local.yaml", root, "local")
    assert make_demo.main(["--params", str(params), "--out", str(root / "demo"), "--workers", "2"]) == 0
    assert (
        ingest.main(
            ["--params", str(params), "--out", str(root / "manifest.parquet"), "--labels", str(root / "labels")]
        )
        == 0
    )
    run = Run(root, params, root / "local")
    run.decode()
    run.transcribe(run.decoded, run.status)
    for modality in MODALITIES:
        run.features(modality, run)
    return run


@pytest.fixture(scope="module")
def ray_run(local_run: Run) -> Run:
    return Run(
        local_run.root, _write_params(local_run.root / "ray.yaml", local_run.root, "ray"), local_run.root / "ray"
    )


def _same_files(left: Path, right: Path) -> list[str]:
    names = sorted(p.name for p in left.iterdir())
    assert names == sorted(p.name for p in right.iterdir())  # no markers or temporary files left behind
    assert names
    return [name for name in names if (left / name).read_bytes() != (right / name).read_bytes()]


@contextmanager
def killing_a_busy_worker() -> Iterator[list[int]]:
    """SIGKILLs the first Ray worker process found running a unit (process title
    ``ray::EmiWorker.run``) while the block runs; yields the list that receives its pid."""
    killed: list[int] = []
    stop = threading.Event()

    def hunt() -> None:
        while not stop.is_set():
            for process in psutil.process_iter(["pid", "cmdline"]):
                command = process.info["cmdline"] or []
                if command and command[0].startswith("ray::EmiWorker.run"):
                    os.kill(process.info["pid"], signal.SIGKILL)
                    killed.append(process.info["pid"])
                    return
            stop.wait(0.02)

    hunter = threading.Thread(target=hunt, daemon=True)
    hunter.start()
    try:
        yield killed
    finally:
        stop.set()
        hunter.join()


# ------------------------------------------------------------------------------------- tests
def test_ray_workers_run_this_checkout_on_loopback_only(local_ray: None) -> None:
    with _ray_executor(cpus=1).pool(1) as pool:
        module, cpus = pool.submit(_where).result()
    assert Path(module).resolve().is_relative_to(REPO) and cpus == 1  # the Ray-assigned CPUs
    listening = []
    for child in psutil.Process().children(recursive=True):
        try:
            listening += [c.laddr.ip for c in child.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    assert listening and set(listening) <= LOOPBACK


def _where() -> tuple[str, int]:
    import pipeline

    return pipeline.__file__, usable_cpus()


@pytest.mark.slow
def test_decode_on_ray_writes_local_bytes_after_a_killed_worker(local_ray: None, local_run: Run, ray_run: Run) -> None:
    with killing_a_busy_worker() as killed:
        ray_run.decode()
    assert killed, "no worker was running a unit to kill"
    ids = pq.read_table(local_run.root / "manifest.parquet").column("clip_id").to_pylist()
    assert pq.read_table(ray_run.status).column("clip_id").to_pylist() == ids  # every clip has its row
    assert _same_files(local_run.decoded, ray_run.decoded) == []
    assert pq.read_table(ray_run.status).equals(pq.read_table(local_run.status))


@pytest.mark.slow
def test_asr_on_ray_writes_local_bytes(local_ray: None, local_run: Run, ray_run: Run) -> None:
    ray_run.transcribe(local_run.decoded, local_run.status)
    assert ray_run.asr.read_bytes() == local_run.asr.read_bytes()
    assert _same_files(local_run.encoder, ray_run.encoder) == [] and any(local_run.encoder.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("modality", MODALITIES)
def test_feature_stages_on_ray_write_local_bytes(local_ray: None, local_run: Run, ray_run: Run, modality: str) -> None:
    if modality == "visual":  # a worker killed mid-run: its shard is computed again, the same
        with killing_a_busy_worker() as killed:
            out = ray_run.features(modality, local_run)
        assert killed, "no worker was running a unit to kill"
    else:
        out = ray_run.features(modality, local_run)
    assert _same_files(local_run.out / "features" / modality, out) == []
    ids = pq.read_table(local_run.root / "manifest.parquet").column("clip_id").to_pylist()
    assert sorted(r.clip_id for r in read_features(out)) == sorted(ids)


@pytest.mark.slow
def test_a_clip_that_kills_its_decoder_twice_is_an_error_on_ray(
    local_ray: None, local_run: Run, tmp_path: Path
) -> None:
    """As tests/test_decode.py's test on the local executor."""
    manifest = pq.read_table(local_run.root / "manifest.parquet").to_pylist()
    good = [(row["clip_id"], row["path"]) for row in manifest[:2]]
    clips = [good[0], ("boom", CrashingPath(good[0][1])), good[1]]  # shards [good, boom] and [good]
    lines: list[str] = []
    out = tmp_path / "decoded"
    reports = decode_manifest(clips, out, DecodeParams(clips_per_shard=2), log=lines.append, executor=_ray_executor())
    assert [r.clip_id for r in reports] == [c for c, _ in clips]
    assert reports[1].status == "error" and "died on this file twice" in reports[1].message
    assert any("died on clip boom" in line for line in lines)
    assert [a.clip_id for a in iter_clip_audio(out)] == [c for c, _ in clips]
    status = {r["clip_id"]: r for r in pq.read_table(local_run.status).to_pylist()}
    assert [(r.status, r.n_frames) for r in (reports[0], reports[2])] == [
        (status[c]["status"], status[c]["n_frames"]) for c, _ in good
    ]
    assert sorted(p.name for p in out.iterdir()) == shard_files(2)  # no markers or temporary files


@pytest.mark.slow
def test_a_clip_that_kills_its_asr_worker_is_the_only_error_on_ray(local_ray: None) -> None:
    quiet = np.zeros(16000, np.float32)
    clips = [AsrClip("a", quiet, 16000), AsrClip("bomb", _KillsWorker(), 16000), AsrClip("b", quiet, 16000)]
    params = AsrParams(model="tiny.en")
    rows = list(transcribe_clips(clips, params, device="cpu", workers=2, executor=_ray_executor()))
    assert [(r.clip_id, r.status) for r in rows] == [("a", "no_speech"), ("bomb", "error"), ("b", "no_speech")]
    assert "worker process died on this clip" in rows[1].message


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_clip_that_kills_its_feature_worker_becomes_an_error_record(
    local_ray: None, tmp_path: Path, executor: str
) -> None:
    ex = LOCAL if executor == "local" else _ray_executor()
    tasks = [
        ShardTask("train-00000.parquet", ["a", "bomb", "c", "d"], "fp"),
        ShardTask("train-00001.parquet", ["e"], "fp1"),
    ]
    runner = PooledShards(ex, "text", dying.init_worker, ())
    report = build_shards(
        tmp_path,
        tasks,
        extractor=dying.DiesOnBomb(),
        inputs=dying.texts,
        dtype="float32",
        chunk_clips=2,
        progress=False,
        runner=runner,
    )
    records = {r.clip_id: r for r in read_features(tmp_path)}
    assert sorted(records) == ["a", "bomb", "c", "d", "e"]
    assert [c for c, r in records.items() if not r.available] == ["bomb"] and records["bomb"].reason == CRASHED
    assert report.computed == ["train-00000.parquet", "train-00001.parquet"] and report.reasons == {CRASHED: 1}
    assert shard_fingerprint(tmp_path / "train-00000.parquet") == INCOMPLETE_PREFIX + "fp"  # retried next run
    assert sorted(p.name for p in tmp_path.iterdir()) == report.computed  # no markers or temporary files
