from __future__ import annotations

from pathlib import Path

import pytest

from stad_core.config import StageConfig, load_config, parse_overrides
from stad_core.errors import ConfigError


class DemoConfig(StageConfig):
    videos: int = 4
    seconds: float = 30.0
    name: str = "demo"
    keyframes: tuple[int, int] | None = None


def test_defaults_overrides_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("videos: 8\nname: from-file\n")
    cfg = load_config(DemoConfig, path, ["seconds=12.5", "keyframes=[902, 1798]"])
    assert cfg.videos == 8 and cfg.name == "from-file"
    assert cfg.seconds == 12.5 and cfg.keyframes == (902, 1798)


def test_override_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("videos: 8\n")
    assert load_config(DemoConfig, path, ["videos=2"]).videos == 2


def test_hash_is_stable_and_sensitive() -> None:
    a = DemoConfig(videos=3)
    b = load_config(DemoConfig, None, ["videos=3"])
    assert a.config_hash() == b.config_hash()
    assert len(a.config_hash()) == 16
    assert DemoConfig(videos=4).config_hash() != a.config_hash()


def test_frozen() -> None:
    cfg = DemoConfig()
    with pytest.raises(Exception):
        cfg.videos = 5  # type: ignore[misc]


def test_unknown_key_names_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'vidoes'.*allowed: keyframes, name, seconds, videos"):
        load_config(DemoConfig, None, ["vidoes=3"])


def test_bad_value_and_bad_override() -> None:
    with pytest.raises(ConfigError, match="videos"):
        load_config(DemoConfig, None, ["videos=many"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["videos"])


def test_missing_and_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(DemoConfig, tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(DemoConfig, path)
