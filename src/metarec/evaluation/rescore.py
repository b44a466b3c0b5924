"""Re-score a saved run on its test users."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from metarec.baselines.tuning import fit_baselines
from metarec.checkpoint import load_checkpoint
from metarec.data.dataset import load_dataset
from metarec.data.splits import split_users
from metarec.errors import DataError
from metarec.fileio import atomic_write_text
from metarec.meta.trainer import resolve_device
from metarec.recommender import Recommender

logger = logging.getLogger(__name__)


def rescore_run(
    run_dir: Path,
    *,
    data_dir: Path | None = None,
    device: str | None = None,
    with_baselines: bool = False,
) -> dict[str, Any]:
    """Evaluate the checkpoint in ``run_dir`` as ``metarec run`` did; write ``evaluation.json``."""
    from metarec.pipeline import AGENT_NAME, dataset_summary, evaluate_models

    checkpoint = load_checkpoint(run_dir, resolve_device(device or "cpu"))
    config = checkpoint.config
    if data_dir is not None:
        config.data.data_dir = data_dir
    log = load_dataset(config.data)
    if log.item_ids != checkpoint.item_ids:
        raise DataError(
            f"the dataset has {log.n_items} items but the checkpoint was trained on "
            f"{len(checkpoint.item_ids)} other or differently ordered ids",
            path=run_dir,
            fix="point --data-dir at the data the run was trained on",
        )
    if checkpoint.metadata.get("data_fingerprint") not in (None, log.fingerprint()):
        raise DataError(
            f"the dataset ({log.n_users} users, {log.n_interactions} interactions) differs from "
            "the one the checkpoint was trained on",
            path=run_dir,
            fix="point --data-dir at the data the run was trained on",
        )
    split = split_users(log)
    models: dict[str, Recommender] = {AGENT_NAME: checkpoint.agent}
    if with_baselines:
        models.update(fit_baselines(log, split, config.baselines, config.protocol))
    metrics, _ = evaluate_models(models, log, split.test, config.protocol)
    results = {
        "dataset": dataset_summary(log, split),
        "protocols": metrics,
        "headline_shots": config.protocol.headline_shots,
    }
    atomic_write_text(run_dir / "evaluation.json", json.dumps(results, indent=2))
    logger.info("wrote %s", run_dir / "evaluation.json")
    return results
