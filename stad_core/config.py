"""Stage configuration: frozen pydantic models, THE config loader, stable hashes.

Every stage has one ``StageConfig`` subclass (flat fields, defaults in the class, unknown keys
rejected; the pipeline's config nests one section per stage). The config hash is part of the
identity of everything a stage writes.

``load_config`` is the one way a config is read from the outside world: optional base values
(e.g. a synth preset) < a YAML file < dotted ``key=value`` overrides. Each of those is a *layer*;
when validation fails, every problem names the layer whose value is wrong (``override epochs=abc``,
``configs/train.yaml``), so a user knows whether to fix the command line or the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from stad_core.errors import ConfigError

C = TypeVar("C", bound="StageConfig")

#: (origin named in errors, nested values) -- one per base mapping, file, and override.
_Layer = tuple[str, dict[str, Any]]


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


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    base: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
) -> C:
    """``cls`` from ``base`` < the YAML file at ``path`` < ``values`` < ``key=value`` overrides
    (later ones win; ``values`` is a partial, possibly nested mapping, e.g. a deployment run's
    parameters, merged section by section like the rest).

    Override values are read as YAML (``4`` -> int, ``[1, 2]`` -> list); dotted keys address
    sections (``synth.videos=2`` -> ``{"synth": {"videos": 2}}``) and merge into the file's section
    instead of replacing it. Dotted top-level keys of the file or ``base`` nest the same way.

    Raises:
        ConfigError: a missing or malformed file, a malformed override, or invalid values; each
            validation problem names its origin (``override KEY=VALUE``, the file, or ``defaults``).
    """
    layers: list[_Layer] = []
    if base is not None:
        layers.append(("defaults", _nest(base, "defaults")))
    if path is not None:
        layers.append((str(path), _nest(_read_yaml(path), str(path))))
    if values:
        layers.append(("parameters", _nest(dict(values), "parameters")))
    for item in overrides:
        label = f"override {item}"
        layers.append((label, _nest(dict([_parse_override(item)]), label)))
    values: dict[str, Any] = {}
    for _, layer in layers:
        values = _merge(values, layer)
    fallback = str(path) if path is not None else "overrides" if overrides else "parameters" if values else "defaults"
    return _validate(cls, values, lambda loc: _origin(loc, layers, fallback))


def build_config(cls: type[C], values: Mapping[str, Any], *, source: str = "config") -> C:
    """Validate in-code ``values`` into ``cls``; errors name ``source``, each bad key and the allowed keys."""
    return _validate(cls, values, lambda loc: source)


# -- layers ------------------------------------------------------------------------------------------


def _parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, YAML value)``; an empty value is None."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item}: value is not valid YAML ({exc})") from None


def _read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of setting: value (an empty file is an empty mapping)."""
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


def _nest(values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """``{"synth.videos": 2}`` -> ``{"synth": {"videos": 2}}`` (sections of a nested config)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{origin}: setting {key!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: sections merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _origin(loc: tuple[str | int, ...], layers: Sequence[_Layer], fallback: str) -> str:
    """Which layer an error at ``loc`` is about.

    The last layer that sets a value at ``loc`` (or at a setting above it: a list's items come
    with the list) gave the merged value. A section- or config-level error (a cross-field check)
    names every layer with a value inside it; an error nothing set (a missing field) the fallback.
    """
    path = [str(p) for p in loc]
    for label, layer in reversed(layers):
        if _sets(layer, path):
            return label
    return ", ".join(label for label, layer in layers if _reaches(layer, path)) or fallback


def _sets(layer: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = layer
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, Mapping):
            return True
    return False


def _reaches(layer: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = layer
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return bool(node)


# -- validation ----------------------------------------------------------------------------------


def _validate(cls: type[C], values: Mapping[str, Any], origin: Callable[[tuple[str | int, ...]], str]) -> C:
    """``cls.model_validate(values)``; a failure becomes one ConfigError, its problems grouped by origin."""
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        groups: dict[str, list[str]] = {}
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "<root>"
            if err["type"] == "extra_forbidden":
                section = _section_model(cls, loc[:-1])
                allowed = f" (allowed: {', '.join(sorted(section.model_fields))})" if section is not None else ""
                problem = f"unknown setting {key!r}{allowed}"
            else:
                problem = f"{key}: {err['msg']}"
            groups.setdefault(origin(loc), []).append(problem)
        raise ConfigError(
            "; ".join(f"{where}: invalid {cls.__name__}: " + "; ".join(problems) for where, problems in groups.items())
        ) from None


def _section_model(cls: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the (nested) section at ``path`` (None where it is not a model)."""
    model: type[BaseModel] | None = cls
    for part in path:
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return None
        kinds = (field.annotation, *get_args(field.annotation))  # `Model | None` too
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    return model
