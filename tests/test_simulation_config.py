"""The simulation configuration: defaults, overrides and the errors bad values give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metarec.errors import ConfigError
from metarec.simulation.config import load_simulation_config
from metarec.simulation.world import build_world


def test_defaults_are_valid() -> None:
    config = load_simulation_config()
    assert config.world.source == "ml-100k"
    assert config.episode.rounds == 20


def test_override_nested_field() -> None:
    config = load_simulation_config(None, ["episode.reward=revenue", "rl.iterations=5"])
    assert config.episode.reward == "revenue"
    assert config.rl.iterations == 5


def test_override_keeps_the_other_simulation_defaults(tmp_path: Path) -> None:
    """One field of a section must not reset its siblings to the section class's defaults."""
    defaults = load_simulation_config()
    path = tmp_path / "sim.yaml"
    path.write_text("pretrain:\n  epochs: 3\n")
    config = load_simulation_config(path, ["rl.iterations=5", "model.dim=32"])
    assert config.rl.objective == defaults.rl.objective == "clicks"
    assert config.rl.batch_size == defaults.rl.batch_size
    assert config.rl.lr == defaults.rl.lr
    assert config.model.encoder == defaults.model.encoder == "none"
    assert config.model.ridge_head
    assert config.model.dim == 32
    assert config.pretrain.epochs == 3
    assert config.pretrain.patience == defaults.pretrain.patience == 4


def test_ridge_head_follows_the_episode_slate_size() -> None:
    config = load_simulation_config(None, ["episode.slate_size=5"])
    assert config.policy_model().ridge_slate_size == 5
    with pytest.raises(ConfigError, match=r"ridge_slate_size=4 must equal episode\.slate_size=5"):
        load_simulation_config(None, ["episode.slate_size=5", "model.ridge_slate_size=4"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=-3", "'seed'"),
        ("episode.rounds=0", "'episode.rounds'"),
        ("episode.reward=likes", "'episode.reward'"),
        ("eval_users=1", "'eval_users'"),
        ("world.synthetic.n_items=30", "'world.synthetic.n_items'"),
        ("episode.min_shots=9", "min_shots=9 must not exceed max_shots=5"),
    ],
)
def test_invalid_value_names_field(override: str, expected: str) -> None:
    overrides = [override] + (["episode.max_shots=5"] if "min_shots" in override else [])
    with pytest.raises(ConfigError, match=expected):
        load_simulation_config(None, overrides)


def test_unknown_field_lists_valid_fields() -> None:
    with pytest.raises(ConfigError, match=r"unknown config field 'episode\.slates'.*slate_size"):
        load_simulation_config(None, ["episode.slates=3"])


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("episode:\n  rounds: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML.*line \d+, column \d+"):
        load_simulation_config(path)


def test_unknown_world_suggests_synthetic(tmp_path: Path) -> None:
    config = load_simulation_config(None, ["world.source=nosuchdata", f"world.data_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="pass --world synthetic"):
        build_world(config)


def test_embedding_size_larger_than_catalog() -> None:
    config = load_simulation_config(
        None,
        ["world.source=synthetic", "world.synthetic.n_items=50", "baselines.dims=[64]"],
    )
    with pytest.raises(ConfigError, match=r"baselines.dims \[64\] must be smaller than the 50"):
        build_world(config)


def test_section_error_names_fix_not_dump() -> None:
    with pytest.raises(ConfigError) as error:
        load_simulation_config(None, ["model.encoder=none", "model.ridge_head=false"])
    message = str(error.value)
    assert message.startswith("invalid config section 'model':")
    assert "set model.ridge_head=true" in message
    assert "'dim'" not in message


def test_yaml_list_section_blames_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("rl:\n  - iterations: 5\n")
    with pytest.raises(ConfigError, match="'rl' is not a section, because the config file"):
        load_simulation_config(path, ["rl.iterations=20"])


@pytest.mark.parametrize(
    "override",
    [
        "baselines.ridges=[-1]",
        "baselines.epsilons=[2]",
        "baselines.dims=[0]",
        "baselines.dqn_lrs=[0]",
    ],
)
def test_grid_values_checked_early(override: str) -> None:
    field = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"invalid config value for '{field}.0'")):
        load_simulation_config(None, [override])


def test_max_tokens_below_slate_size() -> None:
    with pytest.raises(ConfigError, match=r"model\.max_tokens=8 is below episode\.slate_size=10"):
        load_simulation_config(None, ["model.max_tokens=8"])
