"""Load the dataset a run configuration names, from a path, the cache or the web."""

from __future__ import annotations

import logging
from pathlib import Path

from metarec.config import DataConfig
from metarec.data.download import resolve_dataset
from metarec.data.interactions import InteractionLog
from metarec.data.loaders import load_interactions
from metarec.data.preprocess import preprocess
from metarec.errors import DataError

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".inter", ".dat", ".data"}

logger = logging.getLogger(__name__)


def dataset_path(config: DataConfig) -> Path:
    """Return the folder or file that contains the interactions of ``config.dataset``.

    A value that names an existing path is used as it is; any other value is
    a dataset name looked up in ``data_dir``, ``$METAREC_DATA_DIR``, the user
    cache, and downloaded as a last resort.
    """
    candidate = Path(config.dataset).expanduser()
    if looks_like_path(config.dataset):
        if not candidate.exists():
            raise DataError(
                "dataset file or folder not found",
                path=candidate,
                fix="check the path, or pass a dataset name such as ml-100k",
            )
        return candidate
    if candidate.is_dir() and config.data_dir is None:
        return candidate
    if config.data_dir is not None and not config.data_dir.is_dir():
        raise DataError("data folder not found", path=config.data_dir, fix="check --data-dir")
    return resolve_dataset(config.dataset, config.data_dir)


def looks_like_path(value: str) -> bool:
    """Return whether a dataset value is a path (it has a folder part or a file suffix)."""
    return "/" in value or "\\" in value or Path(value).suffix.lower() in TABLE_SUFFIXES


def load_dataset(config: DataConfig) -> InteractionLog:
    """Read and preprocess the interactions named by ``config``."""
    path = dataset_path(config)
    logger.info("loading %s from %s", config.dataset, path)
    frame = load_interactions(path, fmt=config.format, columns=config.columns, sep=config.separator)
    name = Path(config.dataset).name if Path(config.dataset).exists() else config.dataset
    return preprocess(
        frame,
        name=name,
        rating_threshold=config.rating_threshold,
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
    )
