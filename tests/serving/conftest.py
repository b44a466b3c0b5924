"""Fixtures of the service tests: one real tiny checkpoint per session, apps and clients."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from metarec.checkpoint import save_checkpoint
from metarec.config import load_config
from metarec.data.dataset import load_dataset
from metarec.data.splits import split_users
from metarec.meta.trainer import train_agent
from metarec.serving.settings import ServiceSettings

# Starlette 1.x prefers httpx2 but still drives its TestClient with httpx.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from fastapi.testclient import TestClient  # noqa: E402
from service_helpers import API_KEY  # noqa: E402

from metarec.serving.app import create_app  # noqa: E402

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
POSTGRES_ENV = "METAREC_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def checkpoint_dir(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the tiny configuration on MovieLens-100K and save its checkpoint (a few seconds)."""
    torch.set_num_threads(1)
    config = load_config(TINY_CONFIG, [f"data.data_dir={shared_data_dir}", "threads=1"])
    log = load_dataset(config.data)
    result = train_agent(log, split_users(log), config)
    folder = tmp_path_factory.mktemp("served") / "run"
    save_checkpoint(folder, result.agent, config, log)
    return folder


@pytest.fixture
def make_settings(checkpoint_dir: Path, tmp_path: Path) -> Callable[..., ServiceSettings]:
    """Return a factory of settings over the tiny checkpoint and a fresh SQLite store."""

    def make(**changes: object) -> ServiceSettings:
        values: dict[str, object] = {
            "run_dir": checkpoint_dir,
            "db_url": f"sqlite:///{tmp_path / 'events.db'}",
            "api_keys": (API_KEY,),
        }
        values.update(changes)
        return ServiceSettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def client(make_settings: Callable[..., ServiceSettings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


@pytest.fixture
def postgres_url() -> str:
    """Return the PostgreSQL URL of the test database, or skip when none is configured."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"${POSTGRES_ENV} is not set; .ci/run must start PostgreSQL")
        pytest.skip(f"set ${POSTGRES_ENV} to run the PostgreSQL tests")
    return url
