"""params.yaml schema: typos are errors naming the key; the shipped file equals the defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pipeline.config import (
    ALL_KEYS,
    STAGE_SECTIONS,
    UNTRACKED_SECTIONS,
    Params,
    ParamsError,
    load_params,
    parse_params,
    stage_keys,
)

from .conftest import REPO


def test_shipped_params_validate_and_equal_schema_defaults() -> None:
    shipped = load_params(REPO / "params.yaml")
    assert shipped == Params()


def test_every_schema_key_is_written_in_params_yaml() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())

    def present(dotted: str) -> bool:
        node = raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    assert [k for k in ALL_KEYS if not present(k)] == []


@pytest.mark.parametrize(
    ("override", "named", "suggestion"),
    [
        ({"decode": {"fsp": 4}}, "decode.fsp", "decode.fps"),
        ({"fusion": {"anchr": "audio"}}, "fusion.anchr", "fusion.anchor"),
        ({"features": {"visual": {"modle": "x"}}}, "features.visual.modle", "features.visual.model"),
        ({"trian": {"lr": 1}}, "trian", "train"),
    ],
)
def test_typo_is_an_error_naming_the_key(override: dict, named: str, suggestion: str) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(override)
    message = str(info.value)
    assert f"unknown key '{named}'" in message
    assert f"did you mean '{suggestion}'" in message


def test_bad_value_names_key_and_value() -> None:
    with pytest.raises(ParamsError, match=r"'decode.fps'.*-1"):
        parse_params({"decode": {"fps": -1}})
    with pytest.raises(ParamsError, match="fusion.model"):
        parse_params({"fusion": {"model": "tamei"}})


def test_runtime_section_is_validated_and_tracked_by_no_stage() -> None:
    assert parse_params({"runtime": {"executor": "ray", "features_gpus": 0.5}}).runtime.executor == "ray"
    with pytest.raises(ParamsError, match="runtime.executor"):
        parse_params({"runtime": {"executor": "dask"}})
    with pytest.raises(ParamsError, match="did you mean 'runtime.ray_address'"):
        parse_params({"runtime": {"ray_adress": "auto"}})
    with pytest.raises(ParamsError, match="runtime.decode_cpus"):
        parse_params({"runtime": {"decode_cpus": 0}})
    runtime_keys = [k for k in ALL_KEYS if k.startswith("runtime.")]
    assert "runtime.executor" in runtime_keys
    assert not any(k in runtime_keys for stage in STAGE_SECTIONS for k in stage_keys(stage))
    assert set(UNTRACKED_SECTIONS) == {"decode", "asr", "features@visual", "features@audio", "features@text"}


def test_stage_keys_are_prefix_closed() -> None:
    assert stage_keys("ingest") == ["data.source", "data.root", "data.limit_per_split"]
    assert all(
        k.startswith("features.audio.") or k in ("features.dtype", "features.clips_per_shard")
        for k in stage_keys("features@audio")
    )
    assert not any(
        k.startswith(("fusion.", "train.")) for s in ("decode", "asr", "features@text") for k in stage_keys(s)
    )


def test_check_params_stage_fails_before_work_on_typo(tmp_path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["decode"]["fsp"] = 4
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    stamp = tmp_path / "params.ok"
    run = subprocess.run(
        [sys.executable, "-m", "stages.check_params", "--params", str(bad), "--out", str(stamp)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "unknown key 'decode.fsp'" in run.stderr
    assert not stamp.exists()


def test_task_names_are_the_registry() -> None:
    from pipeline import config, tasks

    assert config.TASKS == tuple(tasks.TASKS)
    assert config.FRAME_TASKS == tuple(t.name for t in tasks.FRAME_TASKS)
