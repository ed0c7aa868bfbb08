"""Params overrides: ``dvc exp run -S`` syntax, applying overrides, and comparing configurations."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from pipeline.config import ParamsError, parse_params

PARAMS_FILE = "params.yaml"
_SAFE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_value(value: Any) -> str:
    """A value in Hydra's override grammar, the one ``dvc exp run -S`` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        # Bare words like true/null would parse as bool/None: quote everything not a plain word.
        plain = _SAFE_WORD.fullmatch(value) and value.lower() not in ("true", "false", "null")
        return value if plain else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no override syntax for {value!r}")


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """``["-S", "key=value", ...]`` for ``dvc exp run``."""
    args: list[str] = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={format_value(value)}"]
    return args


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted ``overrides`` set; like DVC, a key must already exist."""
    result = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise KeyError(f"override '{key}': '{part}' is not a section of {PARAMS_FILE}")
        if leaf not in node:
            raise KeyError(f"override '{key}': no such key in {PARAMS_FILE}")
        node[leaf] = copy.deepcopy(list(value) if isinstance(value, tuple) else value)
    return result


def signature(params: Mapping[str, Any]) -> str:
    """Canonical form of ``params`` without ``train.seed``: equal for runs of the same grid row.

    Validated through the schema when possible, so aliases (``vision``) and int/float spellings of
    the same value compare equal; params of an older schema compare as written.
    """
    try:
        canonical: Any = parse_params(dict(params)).model_dump(mode="json")
    except ParamsError:
        canonical = copy.deepcopy(dict(params))
    if isinstance(canonical.get("train"), dict):
        canonical["train"].pop("seed", None)
    return json.dumps(canonical, sort_keys=True)
