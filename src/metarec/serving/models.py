"""The loaded checkpoint behind the service and its atomic replacement."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from metarec.checkpoint import WEIGHTS_FILE, Checkpoint, load_checkpoint
from metarec.config import RunConfig
from metarec.data.loaders import read_item_titles
from metarec.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSnapshot:
    """One loaded checkpoint; a request keeps the snapshot it started with until it ends."""

    checkpoint: Checkpoint
    run_dir: Path
    version: str
    loaded_at: float
    titles: dict[str, str]

    @cached_property
    def item_index(self) -> dict[str, int]:
        return self.checkpoint.item_index

    @property
    def dataset(self) -> str:
        return str(self.checkpoint.metadata.get("dataset", ""))


def weights_version(run_dir: Path) -> str:
    """Return the first 12 hex digits of the SHA-256 of the checkpoint's weights file."""
    digest = hashlib.sha256()
    with (run_dir / WEIGHTS_FILE).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def load_snapshot(run_dir: Path) -> ModelSnapshot:
    """Load a checkpoint on the CPU with its version and item titles."""
    run_dir = run_dir.expanduser().resolve()
    if run_dir.is_file():
        raise DataError(
            "is a file, not a run folder",
            path=run_dir,
            fix="pass the folder that contains model.json and model.safetensors",
        )
    checkpoint = load_checkpoint(run_dir, "cpu")
    version = weights_version(run_dir)
    titles = _item_titles(checkpoint)
    logger.info(
        "loaded model %s from %s (%d items, %d titles)",
        version,
        run_dir,
        len(checkpoint.item_ids),
        len(titles),
    )
    return ModelSnapshot(checkpoint, run_dir, version, time.time(), titles)


def _item_titles(checkpoint: Checkpoint) -> dict[str, str]:
    """Return titles saved in ``model.json``, or else those of the run's dataset folder."""
    saved = checkpoint.metadata.get("item_titles")
    if isinstance(saved, dict):
        return {str(key): str(value) for key, value in saved.items()}
    folder = _dataset_folder(checkpoint.config)
    if folder is None:
        return {}
    try:
        return read_item_titles(folder)
    except (DataError, OSError) as error:
        logger.warning("item titles not read from %s: %s", folder, error)
        return {}


def _dataset_folder(config: RunConfig) -> Path | None:
    """Return the dataset folder of the run's configuration if it exists on this machine.

    Only existing folders are used, because resolving a dataset name could download it.
    """
    dataset = Path(config.data.dataset).expanduser()
    candidates = [dataset, dataset.parent]
    if config.data.data_dir is not None:
        candidates.insert(0, config.data.data_dir / config.data.dataset)
    for candidate in candidates:
        if candidate.is_dir() and candidate != Path("."):
            return candidate
    return None


class ModelHolder:
    """Holds the current :class:`ModelSnapshot` and swaps in a new one atomically.

    Readers take ``holder.current`` once per request, so a reload never changes the
    model under a running request. Reloads run one at a time.
    """

    def __init__(self, snapshot: ModelSnapshot) -> None:
        self._current = snapshot
        self._reload_lock = threading.Lock()

    @property
    def current(self) -> ModelSnapshot:
        return self._current

    def reload(self, run_dir: Path | None = None) -> ModelSnapshot:
        """Load ``run_dir`` (default: the current run folder) and make it current.

        Raises MetarecError when the folder is not a usable checkpoint, and the
        current model stays; the caller logs the failure with its request id.
        """
        with self._reload_lock:
            target = run_dir if run_dir is not None else self._current.run_dir
            snapshot = load_snapshot(target)
            previous = self._current
            self._current = snapshot
        logger.info("model %s replaced by %s", previous.version, snapshot.version)
        return snapshot
