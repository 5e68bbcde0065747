"""Stage configuration: frozen pydantic models, YAML loading, ``key=value`` overrides, stable hashes.

Every stage has one ``StageConfig`` subclass (flat fields, defaults in the class, unknown keys
rejected). The config hash is part of the identity of everything a stage writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from stad_core.errors import ConfigError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base class of all stage configurations (frozen, no unknown keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def config_hash(self) -> str:
        """Stable 16-hex-digit hash of the class name and every field value.

        Canonical JSON (sorted keys) makes it independent of field order and of how the
        values were given (YAML file, override, or defaults).
        """
        payload = {"config": type(self).__name__, "values": self.model_dump(mode="json")}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``4`` -> int, ``[1, 2]`` -> list)."""
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
    return values


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML mapping (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    return dict(data)


def build_config(cls: type[C], values: Mapping[str, Any], *, source: str = "config") -> C:
    """Validate ``values`` into ``cls``; errors name each bad key and the allowed keys."""
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "<root>"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(cls.model_fields))
                problems.append(f"unknown setting {key!r} (allowed: {allowed})")
            else:
                problems.append(f"{key}: {err['msg']}")
        raise ConfigError(f"{source}: invalid {cls.__name__}: " + "; ".join(problems)) from None


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """Load ``cls`` from an optional YAML file, then apply ``key=value`` overrides on top."""
    values: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    values.update(parse_overrides(overrides))
    return build_config(cls, values, source=str(path) if path is not None else "overrides")
