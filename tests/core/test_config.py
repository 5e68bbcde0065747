from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import model_validator

from stad_core.config import StageConfig, build_config, load_config
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
        load_config(DemoConfig, None, ["videos"])
    with pytest.raises(ConfigError, match=r"^override keyframes=\[1: value is not valid YAML"):
        load_config(DemoConfig, None, ["keyframes=[1"])


def test_missing_and_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(DemoConfig, tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(DemoConfig, path)


class SectionConfig(StageConfig):
    videos: int = 2
    seconds: int = 10


class NestedConfig(StageConfig):
    synth: SectionConfig = SectionConfig()
    epochs: int = 1
    heads: tuple[str, ...] = ()


def test_dotted_overrides_nest_and_merge_into_file_sections(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("synth:\n  videos: 3\nepochs: 2\n")
    cfg = load_config(NestedConfig, path, ["synth.seconds=20"])
    assert cfg == NestedConfig(synth=SectionConfig(videos=3, seconds=20), epochs=2)
    path.write_text("synth.videos: 5\n")  # dotted keys of the file nest too
    assert load_config(NestedConfig, path, ["synth.videos=6", "synth.seconds=7"]).synth == SectionConfig(videos=6, seconds=7)


def test_base_sits_under_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("videos: 8\n")
    base = {"videos": 1, "seconds": 2.0, "name": "preset"}
    cfg = load_config(DemoConfig, path, ["seconds=3"], base=base)
    assert (cfg.videos, cfg.seconds, cfg.name) == (8, 3.0, "preset")
    assert load_config(DemoConfig, base=base) == DemoConfig(**base)


def test_errors_name_the_wrong_override(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("synth:\n  videos: 3\nepochs: 2\n")
    with pytest.raises(ConfigError, match=r"^override epochs=abc: invalid NestedConfig: epochs: .*integer") as info:
        load_config(NestedConfig, path, ["epochs=abc"])
    assert str(path) not in str(info.value)
    with pytest.raises(ConfigError, match=r"^override synth\.frames=2: .*unknown setting 'synth\.frames' \(allowed: seconds, videos\)"):
        load_config(NestedConfig, path, ["synth.frames=2"])
    with pytest.raises(ConfigError, match=r"^override heads=\[1\]: invalid NestedConfig: heads\.0: "):
        load_config(NestedConfig, path, ["heads=[1]"])
    with pytest.raises(ConfigError, match=r"^override synth=3: invalid NestedConfig: synth: "):
        load_config(NestedConfig, path, ["synth=3"])
    # The later of two overrides of one key is the one in force, so the one named.
    with pytest.raises(ConfigError, match=r"^override epochs=x: "):
        load_config(NestedConfig, path, ["epochs=1", "epochs=x"])


def test_errors_name_the_file_when_its_value_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("synth:\n  videos: abc\nepochs: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid NestedConfig: synth\.videos: ") as info:
        load_config(NestedConfig, path, ["epochs=3", "synth.seconds=4"])
    assert "override" not in str(info.value)
    path.write_text("epoch: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid NestedConfig: unknown setting 'epoch'"):
        load_config(NestedConfig, path, ["epochs=3"])


def test_errors_of_file_and_override_are_reported_each_with_its_origin(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: [not, a, string]\n")
    with pytest.raises(ConfigError) as info:
        load_config(DemoConfig, path, ["videos=many"])
    message = str(info.value)
    assert "override videos=many: invalid DemoConfig: videos: " in message
    assert f"{path}: invalid DemoConfig: name: " in message


def test_cross_field_errors_name_every_layer_involved(tmp_path: Path) -> None:
    class Ordered(StageConfig):
        low: int = 0
        high: int = 1

        @model_validator(mode="after")
        def _ordered(self) -> Ordered:
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    path = tmp_path / "c.yaml"
    path.write_text("high: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}, override low=5: invalid Ordered: <root>: .*low must not exceed"):
        load_config(Ordered, path, ["low=5"])


def test_build_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^preset 'x': invalid DemoConfig: videos: "):
        build_config(DemoConfig, {"videos": "many"}, source="preset 'x'")


def test_stage_yaml_with_a_wrong_override_names_the_override() -> None:
    """`stad run train -c configs/train.yaml epochs=abc`: the file is fine, the override is not."""
    from stad_core.train import TrainConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "train.yaml"
    with pytest.raises(ConfigError, match=r"^override epochs=abc: invalid TrainConfig: epochs: ") as info:
        load_config(TrainConfig, path, ["epochs=abc"])
    assert "train.yaml" not in str(info.value)
    assert load_config(TrainConfig, path, ["epochs=3", "head=lfb"]).epochs == 3
