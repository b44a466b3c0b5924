"""Saving and loading agents: identical scores after a round trip, DataError on damaged files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.checkpoint import load_checkpoint, save_checkpoint
from metarec.config import ModelConfig, RunConfig
from metarec.data.interactions import InteractionLog
from metarec.errors import DataError
from metarec.fileio import staged_folder
from metarec.session import Session

N_ITEMS = 30


@pytest.fixture()
def log(build_log: Callable[..., InteractionLog]) -> InteractionLog:
    item_ids = [str(100 + index) for index in range(N_ITEMS)]
    return build_log([[0, 1, 2], [3, 4, 5, 6]], item_ids=item_ids)


@pytest.fixture()
def config() -> RunConfig:
    return RunConfig(name="tiny", model=ModelConfig(dim=16, layers=1, heads=2, max_tokens=32))


@pytest.fixture()
def agent(config: RunConfig) -> MetaRLAgent:
    torch.manual_seed(0)
    policy = SlatePolicy(N_ITEMS, config.model)
    # Give the bias a spread so that a load that drops it changes the scores.
    policy.init_output_bias(np.arange(N_ITEMS) * 3)
    return MetaRLAgent(policy, config.adapt)


@pytest.fixture()
def run_dir(tmp_path: Path, agent: MetaRLAgent, config: RunConfig, log: InteractionLog) -> Path:
    folder = tmp_path / "run"
    save_checkpoint(folder, agent, config, log)
    return folder


def sessions() -> list[Session]:
    with_feedback = Session.from_history(np.array([3, 7])).with_slate(
        np.array([10, 11, 12]), np.array([True, False, False])
    )
    return [
        Session.from_history(np.array([0, 1, 2])),
        with_feedback,
        Session.from_history(np.zeros(0, dtype=np.int64)),
        Session.from_history(np.arange(N_ITEMS - 1)),
    ]


def edit_metadata(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = run_dir / "model.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    change(metadata)
    path.write_text(json.dumps(metadata), encoding="utf-8")


def test_round_trip_same_scores(run_dir: Path, agent: MetaRLAgent) -> None:
    loaded = load_checkpoint(run_dir)
    np.testing.assert_array_equal(loaded.agent.score(sessions()), agent.score(sessions()))


def test_round_trip_same_recommendations(run_dir: Path, agent: MetaRLAgent) -> None:
    loaded = load_checkpoint(run_dir)
    np.testing.assert_array_equal(
        loaded.agent.recommend(sessions(), 10), agent.recommend(sessions(), 10)
    )


def test_round_trip_metadata(run_dir: Path, config: RunConfig, log: InteractionLog) -> None:
    loaded = load_checkpoint(run_dir)
    assert loaded.config == config
    assert loaded.item_ids == log.item_ids
    assert loaded.item_index["105"] == 5
    assert loaded.metadata["dataset"] == "tiny"
    assert loaded.metadata["n_items"] == N_ITEMS


def test_loaded_policy_in_eval_mode(run_dir: Path) -> None:
    loaded = load_checkpoint(run_dir)
    assert not loaded.agent.policy.training


def test_saves_two_files(run_dir: Path) -> None:
    assert sorted(path.name for path in run_dir.iterdir()) == ["model.json", "model.safetensors"]


def test_save_replaces_checkpoint(
    run_dir: Path, config: RunConfig, log: InteractionLog, agent: MetaRLAgent
) -> None:
    torch.manual_seed(1)
    other = MetaRLAgent(SlatePolicy(N_ITEMS, config.model), config.adapt)
    save_checkpoint(run_dir, other, config, log)
    loaded = load_checkpoint(run_dir)
    np.testing.assert_array_equal(loaded.agent.score(sessions()), other.score(sessions()))
    assert not np.array_equal(loaded.agent.score(sessions()), agent.score(sessions()))


def test_unicode_item_ids_survive(
    tmp_path: Path,
    agent: MetaRLAgent,
    config: RunConfig,
    build_log: Callable[..., InteractionLog],
) -> None:
    item_ids = [f"película-{index}" for index in range(N_ITEMS)]
    log = build_log([[0, 1]], item_ids=item_ids)
    save_checkpoint(tmp_path / "run", agent, config, log)
    assert load_checkpoint(tmp_path / "run").item_ids == tuple(item_ids)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run folder not found"):
        load_checkpoint(tmp_path / "absent")


def test_missing_metadata(run_dir: Path) -> None:
    (run_dir / "model.json").unlink()
    with pytest.raises(DataError, match=r"no model\.json in the run folder"):
        load_checkpoint(run_dir)


def test_missing_weights(run_dir: Path) -> None:
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(DataError, match=r"missing model\.safetensors"):
        load_checkpoint(run_dir)


def test_truncated_weights(run_dir: Path) -> None:
    path = run_dir / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="unreadable weights"):
        load_checkpoint(run_dir)


def test_garbage_weights(run_dir: Path) -> None:
    (run_dir / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(DataError, match="unreadable weights"):
        load_checkpoint(run_dir)


def test_invalid_json_metadata(run_dir: Path) -> None:
    (run_dir / "model.json").write_text('{"format": ', encoding="utf-8")
    with pytest.raises(DataError, match=r"model\.json: invalid JSON"):
        load_checkpoint(run_dir)


def test_non_utf8_metadata(run_dir: Path) -> None:
    (run_dir / "model.json").write_bytes(b'{"format": "\xff"}')
    with pytest.raises(DataError, match="invalid JSON"):
        load_checkpoint(run_dir)


def test_wrong_format(run_dir: Path) -> None:
    edit_metadata(run_dir, lambda metadata: metadata.update(format="something-else"))
    with pytest.raises(DataError, match="not a metarec checkpoint"):
        load_checkpoint(run_dir)


def test_metadata_not_object(run_dir: Path) -> None:
    (run_dir / "model.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="not a metarec checkpoint"):
        load_checkpoint(run_dir)


def test_unsupported_version(run_dir: Path) -> None:
    edit_metadata(run_dir, lambda metadata: metadata.update(format_version=2))
    with pytest.raises(DataError, match="format version 2 is not supported"):
        load_checkpoint(run_dir)


def test_weights_shape_mismatch(run_dir: Path) -> None:
    def shrink_catalog(metadata: dict[str, Any]) -> None:
        metadata["n_items"] = N_ITEMS - 1
        metadata["item_ids"] = metadata["item_ids"][:-1]

    edit_metadata(run_dir, shrink_catalog)
    with pytest.raises(DataError, match=r"weights do not match the model in model\.json"):
        load_checkpoint(run_dir)


def test_metadata_without_config(run_dir: Path) -> None:
    edit_metadata(run_dir, lambda metadata: metadata.pop("config"))
    with pytest.raises(DataError, match="missing field 'config'"):
        load_checkpoint(run_dir)


def test_metadata_invalid_config(run_dir: Path) -> None:
    edit_metadata(run_dir, lambda metadata: metadata["config"]["model"].update(dim="wide"))
    with pytest.raises(DataError, match=r"invalid metadata: .*model\.dim"):
        load_checkpoint(run_dir)


def test_metadata_item_count_mismatch(run_dir: Path) -> None:
    edit_metadata(run_dir, lambda metadata: metadata["item_ids"].pop())
    with pytest.raises(DataError, match="metadata lists 29 item ids for n_items=30"):
        load_checkpoint(run_dir)


@pytest.fixture()
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_files_get_umask_mode(
    tmp_path: Path, agent: MetaRLAgent, config: RunConfig, log: InteractionLog
) -> None:
    # The pipeline saves the checkpoint into a staged run folder, so both get checked.
    with staged_folder(tmp_path / "run") as staging:
        save_checkpoint(staging, agent, config, log)
    run_dir = tmp_path / "run"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o755
    assert stat.S_IMODE((run_dir / "model.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((run_dir / "model.safetensors").stat().st_mode) == 0o644


def test_ridge_checkpoint_without_miss_decay(
    tmp_path: Path, config: RunConfig, log: InteractionLog
) -> None:
    model = config.model.model_copy(
        update={"ridge_head": True, "ridge_dim": 4, "ridge_slate_size": 3}
    )
    ridge_config = config.model_copy(update={"model": model})
    torch.manual_seed(0)
    policy = SlatePolicy(N_ITEMS, model)
    assert policy.ridge is not None
    with torch.no_grad():
        policy.ridge.raw_miss_decay.fill_(-30.0)
    agent = MetaRLAgent(policy, ridge_config.adapt)
    save_checkpoint(tmp_path / "run", agent, ridge_config, log)
    weights = tmp_path / "run" / "model.safetensors"
    state = load_tensors(weights.read_bytes())
    del state["ridge.raw_miss_decay"]
    weights.write_bytes(save_tensors(state))

    loaded = load_checkpoint(tmp_path / "run").agent
    expected = agent.score(sessions())
    np.testing.assert_allclose(loaded.score(sessions()), expected, rtol=1e-5, atol=1e-6)
