"""Loading routing profiles from disk: the one place the operator side reads profile files.

The JSON Schema is a data file of the runtime package; it is found by locating the package on the
path (``importlib.util.find_spec`` locates without importing), or next to this source tree, so the
operator never imports ``thermostat_runtime`` (an import-linter contract).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from thermostat.control.profile import Profile, ProfileError, parse_profile

_TREE_RUNTIME = Path(__file__).resolve().parents[2] / "runtime" / "thermostat_runtime"


def runtime_data_dir() -> Path:
    """Directory of the runtime package's data files (schemas/, profiles/)."""
    spec = importlib.util.find_spec("thermostat_runtime")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return _TREE_RUNTIME


def default_profile_path() -> Path:
    """The committed profile: the measured one when present, else the assumed one."""
    profiles = runtime_data_dir() / "profiles"
    measured = sorted(p for p in profiles.glob("*.json") if p.name != "assumed.json")
    return measured[0] if measured else profiles / "assumed.json"


@cache
def profile_schema() -> dict[str, Any]:
    """The profile JSON Schema (runtime/thermostat_runtime/schemas/profile.schema.json)."""
    path = runtime_data_dir() / "schemas" / "profile.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def load_profile(path: str | Path | None = None) -> Profile:
    """Read, validate and parse a profile file; ``None`` loads the default committed profile."""
    file = Path(path) if path is not None else default_profile_path()
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise ProfileError(f"cannot read profile {file}: {error}; pass --profile with an existing file") from error
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ProfileError(f"profile {file} is not JSON: {error}") from error
    problems = sorted(jsonschema.Draft202012Validator(profile_schema()).iter_errors(data), key=str)
    if problems:
        first = problems[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ProfileError(f"profile {file} does not match the profile schema at {where}: {first.message}")
    return parse_profile(data, sha256=hashlib.sha256(raw).hexdigest())
