"""Pytest fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from metarec.data.interactions import InteractionLog
from metarec.data.loaders import load_interactions
from metarec.data.preprocess import preprocess

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


@pytest.fixture(scope="session")
def build_log() -> Callable[..., InteractionLog]:
    """Return a function that builds a small InteractionLog from per-user item sequences.

    ``build_log([[0, 3], [2]], n_items=5)`` gives users ``u0`` and ``u1`` and items
    ``i00`` to ``i04``. Pass ``user_ids`` or ``item_ids`` to choose the original ids.
    """

    def build(
        sequences: Sequence[Sequence[int]],
        n_items: int | None = None,
        *,
        user_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> InteractionLog:
        if item_ids is None:
            count = n_items if n_items is not None else max(max(s) for s in sequences if s) + 1
            item_ids = [f"i{index:02d}" for index in range(count)]
        if user_ids is None:
            user_ids = [f"u{index}" for index in range(len(sequences))]
        lengths = [len(sequence) for sequence in sequences]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [item for sequence in sequences for item in sequence]
        return InteractionLog(
            user_ids=tuple(user_ids),
            item_ids=tuple(item_ids),
            indptr=indptr,
            items=np.array(flat, dtype=np.int64),
            name="tiny",
        )

    return build


@pytest.fixture(scope="session")
def ml100k_log(ml100k_recbole_dir: Path) -> InteractionLog:
    """MovieLens-100K from the RecBole files, preprocessed with default options."""
    return preprocess(load_interactions(ml100k_recbole_dir), name="ml-100k")
