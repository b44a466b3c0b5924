"""Run configuration: defaults, YAML files, key.path=value overrides and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from metarec.config import RunConfig, load_config
from metarec.errors import ConfigError


def write_yaml(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_validate() -> None:
    config = load_config()
    assert config == RunConfig()
    assert RunConfig.model_validate(config.model_dump()) == config


def test_default_values() -> None:
    config = load_config()
    assert config.data.dataset == "ml-100k"
    assert config.protocol.shots == [1, 3, 5, 10, 20]
    assert config.protocol.rounds == 10
    assert config.protocol.slate_size == 10
    assert config.adapt.steps == 0


def test_yaml_file(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "name: small\nseed: 7\nmodel:\n  dim: 32\n  encoder: gru\nprotocol:\n  shots: [5, 1]\n",
    )
    config = load_config(path)
    assert config.name == "small"
    assert config.seed == 7
    assert config.model.dim == 32
    assert config.model.encoder == "gru"
    assert config.protocol.shots == [1, 5]
    assert config.model.layers == 2


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write_yaml(tmp_path, "")) == RunConfig()


def test_overrides() -> None:
    config = load_config(
        overrides=["model.dim=32", "rl.lr=1e-3", "protocol.shots=[5, 1, 5]", "threads=2"]
    )
    assert config.model.dim == 32
    assert config.rl.lr == pytest.approx(1e-3)
    assert config.protocol.shots == [1, 5]
    assert config.threads == 2


def test_override_beats_yaml(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "model:\n  dim: 32\n  layers: 3\n")
    config = load_config(path, ["model.dim=16"])
    assert config.model.dim == 16
    assert config.model.layers == 3


def test_override_empty_value_is_none() -> None:
    config = load_config(overrides=["data.rating_threshold=4", "data.rating_threshold="])
    assert config.data.rating_threshold is None


def test_override_numeric_text_stays_text() -> None:
    config = load_config(overrides=["name=2024", "data.dataset=007", "data.data_dir=2024"])
    assert config.name == "2024"
    assert config.data.dataset == "007"
    assert config.data.data_dir == Path("2024")


def test_override_text_with_colon() -> None:
    config = load_config(overrides=["data.dataset=runs: v2"])
    assert config.data.dataset == "runs: v2"


def test_override_null_path() -> None:
    config = load_config(overrides=["data.data_dir=/data", "data.data_dir=null"])
    assert config.data.data_dir is None


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("rl.iterations=many", "rl.iterations"),
        ("model.dim=4", "model.dim"),
        ("model.encoder=lstm", "model.encoder"),
        ("protocol.shots=[0, 5]", "protocol.shots"),
        ("model.dropout=1.5", "model.dropout"),
    ],
)
def test_invalid_override_names_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid config value for '{re.escape(field)}'"):
        load_config(overrides=[override])


@pytest.mark.parametrize(
    ("override", "field", "known"),
    [("model.depth=3", "model.depth", "layers"), ("colour=red", "colour", "seed")],
)
def test_unknown_override_lists_fields(override: str, field: str, known: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown config field '{re.escape(field)}'.*{known}"):
        load_config(overrides=[override])


def test_unknown_yaml_key_names_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "pretrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config field 'pretrain\.epoch'.*epochs"):
        load_config(path)


def test_headline_outside_shots() -> None:
    with pytest.raises(ConfigError, match="headline_shots=7 must be one of shots"):
        load_config(overrides=["protocol.headline_shots=7"])


def test_heads_must_divide_dim() -> None:
    with pytest.raises(ConfigError, match="dim=18 must be a multiple of heads=4"):
        load_config(overrides=["model.dim=18", "model.heads=4"])


def test_wrong_yaml_type_names_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "rl:\n  batch_size: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"'rl\.batch_size'"):
        load_config(path)


def test_override_without_equals() -> None:
    with pytest.raises(ConfigError, match=r"override 'model\.dim' must look like section\.field"):
        load_config(overrides=["model.dim"])


def test_override_into_scalar() -> None:
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        load_config(overrides=["seed=1", "seed.value=2"])


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_malformed_yaml_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "model: [dim\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_non_utf8_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_yaml_list_at_top(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "- name\n- seed\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level"):
        load_config(path)


def test_to_yaml_round_trip(tmp_path: Path) -> None:
    config = load_config(
        overrides=[
            "name=round-trip",
            "data.data_dir=/tmp/data",
            "data.rating_threshold=3.5",
            "protocol.shots=[2, 4]",
            "protocol.headline_shots=2",
            "model.encoder=gru",
            "baselines.ease_lambdas=[1.0, 2.0]",
        ]
    )
    path = write_yaml(tmp_path, config.to_yaml())
    assert load_config(path) == config


def test_to_yaml_is_plain_mapping() -> None:
    loaded = yaml.safe_load(RunConfig().to_yaml())
    assert list(loaded)[:3] == ["name", "seed", "device"]
    assert loaded["model"]["dim"] == 64
