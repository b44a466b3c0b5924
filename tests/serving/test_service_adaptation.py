"""Slates adapt to clicks: measured on a checkpoint trained a little longer than tiny.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events, slate

from metarec.checkpoint import save_checkpoint
from metarec.config import load_config
from metarec.data.dataset import load_dataset
from metarec.data.interactions import InteractionLog
from metarec.data.splits import split_users
from metarec.meta.trainer import train_agent
from metarec.serving.app import create_app
from metarec.serving.settings import ServiceSettings

pytestmark = pytest.mark.slow

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
# Tiny's 2 epochs at width 16 barely tell a click from a skip. Five epochs at width 32
# without meta-RL train in about 15 s on 2 cores and separate them clearly.
LONGER = [
    "pretrain.epochs=5",
    "pretrain.samples_per_user=2",
    "model.dim=32",
    "rl.iterations=0",
    "protocol.rounds=3",
    "threads=1",
]
TRIALS = 20


@pytest.fixture(scope="module")
def trained(
    shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, InteractionLog]:
    torch.set_num_threads(1)
    config = load_config(TINY_CONFIG, [f"data.data_dir={shared_data_dir}", *LONGER])
    log = load_dataset(config.data)
    result = train_agent(log, split_users(log), config)
    folder = tmp_path_factory.mktemp("adaptation") / "run"
    save_checkpoint(folder, result.agent, config, log)
    return folder, log


@pytest.fixture
def adapted_client(trained: tuple[Path, InteractionLog], tmp_path: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(trained[0], f"sqlite:///{tmp_path / 'events.db'}", (API_KEY,))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def cooccurrence_cosine(log: InteractionLog) -> np.ndarray:
    """Return the item-item cosine similarity of training users' interactions."""
    matrix = log.to_csr(split_users(log).train).astype(np.float32)
    counts = (matrix.T @ matrix).toarray()
    norms = np.sqrt(np.diag(counts)).clip(min=1.0)
    return counts / norms[:, None] / norms[None, :]


def test_clicks_pull_slate_to_similar_items(
    adapted_client: TestClient, trained: tuple[Path, InteractionLog]
) -> None:
    """After two clicks the next slate is closer to them than after skipping the same slate."""
    log = trained[1]
    similarity = cooccurrence_cosine(log)
    index = log.item_index
    pool = slate(adapted_client, "probe", k=60)
    rng = np.random.default_rng(0)
    after_click, after_skip = [], []
    for trial in range(TRIALS):
        shown = [pool[i] for i in rng.choice(60, size=10, replace=False)]
        clicked = [shown[i] for i in rng.choice(10, size=2, replace=False)]
        for user, kind in ((f"clicker-{trial}", "click"), (f"skipper-{trial}", "skip")):
            batch = events(user, shown, "impression", f"{user}-i")
            if kind == "click":
                batch += events(user, clicked, "click", f"{user}-c")
            post_events(adapted_client, batch)
        targets = [index[item] for item in clicked]
        for user, scores in ((f"clicker-{trial}", after_click), (f"skipper-{trial}", after_skip)):
            following = [index[item] for item in slate(adapted_client, user)]
            assert not set(following) & {index[item] for item in shown}
            scores.append(similarity[np.ix_(following, targets)].mean())
    clicked_mean, skipped_mean = float(np.mean(after_click)), float(np.mean(after_skip))
    assert clicked_mean > skipped_mean + 0.02, (clicked_mean, skipped_mean)
    assert np.mean(np.array(after_click) > np.array(after_skip)) >= 0.6


def test_clicks_raise_embedding_cosine(
    adapted_client: TestClient, trained: tuple[Path, InteractionLog]
) -> None:
    """The policy's own item embeddings agree: clicked items' neighbours move up."""
    from metarec.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(trained[0])
    weights = checkpoint.agent.policy.output_embedding.weight.detach().numpy()
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    index = checkpoint.item_index
    pool = slate(adapted_client, "probe-e", k=60)
    rng = np.random.default_rng(1)
    gains = []
    for trial in range(TRIALS):
        shown = [pool[i] for i in rng.choice(60, size=10, replace=False)]
        clicked = [index[shown[i]] for i in rng.choice(10, size=2, replace=False)]
        user_click, user_skip = f"e-click-{trial}", f"e-skip-{trial}"
        post_events(adapted_client, events(user_click, shown, "impression", f"{user_click}-i"))
        post_events(
            adapted_client,
            events(user_click, [checkpoint.item_ids[i] for i in clicked], "click", user_click),
        )
        post_events(adapted_client, events(user_skip, shown, "skip", user_skip))
        after_click = [index[item] for item in slate(adapted_client, user_click)]
        after_skip = [index[item] for item in slate(adapted_client, user_skip)]
        gains.append(
            (unit[after_click] @ unit[clicked].T).mean()
            - (unit[after_skip] @ unit[clicked].T).mean()
        )
    assert float(np.mean(gains)) > 0.02, gains
