"""Pytest fixtures shared by the test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA_ENV = "METAREC_TEST_DATA"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Return the folder of real datasets, or skip the test when it is absent.

    ``$METAREC_TEST_DATA`` names the folder, and the default is a data folder beside the
    repository.
    """
    from_env = os.environ.get(TEST_DATA_ENV)
    folder = Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"real test data not found at {folder} (set {TEST_DATA_ENV})")
    return folder


def _dataset_folder(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        pytest.skip(f"dataset folder {folder} not found")
    return folder


@pytest.fixture(scope="session")
def ml100k_recbole_dir(shared_data_dir: Path) -> Path:
    """MovieLens-100K in RecBole atomic files (``ml-100k.inter``, ``ml-100k.item``)."""
    return _dataset_folder(shared_data_dir, "ml-100k")


@pytest.fixture(scope="session")
def ml100k_raw_dir(shared_data_dir: Path) -> Path:
    """MovieLens-100K as GroupLens distributes it (``u.data``, ``u.item``)."""
    return _dataset_folder(shared_data_dir, "ml-100k-raw")
