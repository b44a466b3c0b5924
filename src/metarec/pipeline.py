"""The main job: data, baselines, meta-training, evaluation and every output file."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from metarec.baselines.tuning import fit_baselines
from metarec.checkpoint import save_checkpoint
from metarec.config import ProtocolConfig, RunConfig
from metarec.data.dataset import load_dataset, looks_like_path
from metarec.data.interactions import InteractionLog
from metarec.data.splits import UserSplit, split_users
from metarec.errors import ConfigError, DataError
from metarec.evaluation.protocols import evaluate_fewshot, evaluate_interactive
from metarec.evaluation.report import write_report
from metarec.evaluation.timing import time_single_user_scoring
from metarec.fileio import atomic_write_text, staged_folder
from metarec.meta.trainer import resolve_device, train_agent
from metarec.progress import Reporter, SilentReporter
from metarec.recommender import Recommender

logger = logging.getLogger(__name__)

AGENT_NAME = "MetaRL"


@dataclass
class Timer:
    """Wall-clock seconds per named phase."""

    seconds: dict[str, float] = field(default_factory=dict)

    def phase(self, name: str, started: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def evaluate_models(
    models: dict[str, Recommender],
    log: InteractionLog,
    users: np.ndarray,
    protocol: ProtocolConfig,
    keep_rankings_of: str | None = None,
) -> tuple[dict[str, Any], dict[int, dict[int, np.ndarray]]]:
    """Run fewshot-v1 at every K and interactive-v1 for each model on ``users``.

    Returns the metrics as a JSON-ready dict and, for ``keep_rankings_of``,
    its top items per user for each K.
    """
    fewshot: dict[str, dict[str, dict[str, float]]] = {}
    interactive: dict[str, dict[str, Any]] = {}
    rankings: dict[int, dict[int, np.ndarray]] = {}
    for name, model in models.items():
        fewshot[name] = {}
        for shots in protocol.shots:
            keep = protocol.saved_items if name == keep_rankings_of else 0
            result = evaluate_fewshot(model, log, users, shots, keep_items=keep)
            fewshot[name][str(shots)] = {**result.metrics, "users": float(result.users)}
            if keep:
                rankings[shots] = result.rankings
        result_i = evaluate_interactive(
            model, log, users, protocol.interactive_shots, protocol.rounds, protocol.slate_size
        )
        interactive[name] = {
            "recall": result_i.recall,
            "clicks_per_round": result_i.clicks_per_round,
            "users": result_i.users,
        }
    return {"fewshot-v1": fewshot, "interactive-v1": interactive}, rankings


def dataset_summary(log: InteractionLog, split: UserSplit) -> dict[str, Any]:
    return {
        "name": log.name,
        "users": log.n_users,
        "items": log.n_items,
        "interactions": log.n_interactions,
        "train_users": int(split.train.size),
        "validation_users": int(split.valid.size),
        "test_users": int(split.test.size),
    }


RUN_MARKERS = ("model.json", "metrics.json")
EVENT_STORE_FILES = ("events.db", "events.db-wal", "events.db-shm")


def check_output_folder(
    out_dir: Path,
    markers: tuple[str, ...] = RUN_MARKERS,
    owned: tuple[str, ...] | None = None,
) -> Path:
    """Return ``out_dir`` as an absolute path, or raise if replacing it could lose data.

    A command replaces its output folder as a whole, so the folder must be
    new, empty, or an earlier output of the same command, recognised by one
    of ``markers``. With ``owned`` (glob patterns of the files the command
    writes), an earlier output must contain nothing else either. The folder
    must not contain the working directory, nor the event store that
    ``metarec serve`` keeps in a run folder.
    """
    target = out_dir.expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"output path {out_dir} is a file; pass a folder with --out")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ConfigError(
            f"output folder {out_dir} contains the working directory; pass a new folder"
        )
    stores = [name for name in EVENT_STORE_FILES if (target / name).exists()]
    if stores:
        raise ConfigError(
            f"output folder {out_dir} contains the event store {stores[0]} of `metarec serve`; "
            "replacing the folder would delete its events, so pass a new folder with --out"
        )
    holds_output = any((target / marker).is_file() for marker in markers)
    if target.is_dir() and any(target.iterdir()) and not holds_output:
        raise ConfigError(
            f"output folder {out_dir} is not empty and contains no earlier output of this "
            f"command (none of {', '.join(markers)}); pass a new or empty folder with --out"
        )
    if owned is not None and target.is_dir():
        foreign = sorted(
            entry.name
            for entry in target.iterdir()
            if not entry.is_file() or not any(fnmatch(entry.name, p) for p in owned)
        )
        if foreign:
            raise ConfigError(
                f"output folder {out_dir} contains {', '.join(foreign[:3])}, which this command "
                "did not write; replacing the folder would delete them, so pass a new folder "
                "with --out"
            )
    return target


def resolve_data_paths(config: RunConfig) -> None:
    """Store the dataset path and data folder as absolute paths, so config.yaml works anywhere."""
    dataset = Path(config.data.dataset).expanduser()
    if dataset.exists() and (looks_like_path(config.data.dataset) or config.data.data_dir is None):
        config.data.dataset = str(dataset.resolve())
    if config.data.data_dir is not None:
        config.data.data_dir = config.data.data_dir.expanduser().resolve()


def check_split(split: UserSplit) -> None:
    """Raise when a part of the user split is empty: nothing could be trained, tuned or scored."""
    sizes = {"training": split.train.size, "validation": split.valid.size, "test": split.test.size}
    empty = [name for name, size in sizes.items() if size == 0]
    if empty:
        counts = ", ".join(f"{size} {name}" for name, size in sizes.items())
        raise DataError(
            f"the user split has no {' and no '.join(empty)} users ({counts})",
            fix="use a dataset with more users, or lower data.min_user_interactions",
        )


def run(config: RunConfig, out_dir: Path, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the main job and write every output into ``out_dir``; return the metrics."""
    reporter = reporter or SilentReporter()
    resolve_device(config.device)
    out_dir = check_output_folder(out_dir)
    resolve_data_paths(config)
    timer = Timer()
    started = time.perf_counter()
    log = load_dataset(config.data)
    split = split_users(log)
    check_split(split)
    logger.info(
        "%s: %d users (%d train, %d validation, %d test), %d items, %d interactions",
        log.name,
        log.n_users,
        split.train.size,
        split.valid.size,
        split.test.size,
        log.n_items,
        log.n_interactions,
    )
    timer.phase("data", started)

    started = time.perf_counter()
    baselines = fit_baselines(log, split, config.baselines, config.protocol)
    timer.phase("baselines", started)

    started = time.perf_counter()
    training = train_agent(log, split, config, reporter)
    timer.phase("training", started)

    started = time.perf_counter()
    models: dict[str, Recommender] = {AGENT_NAME: training.agent, **baselines}
    metrics, rankings = evaluate_models(models, log, split.test, config.protocol, AGENT_NAME)
    scoring_ms = time_single_user_scoring(training.agent, log, split.test)
    timer.phase("evaluation", started)

    results: dict[str, Any] = {
        "dataset": dataset_summary(log, split),
        "protocols": metrics,
        "training": training.history,
        "timings": {
            **{f"{name}_s": round(value, 3) for name, value in timer.seconds.items()},
            "total_s": round(sum(timer.seconds.values()), 3),
            "score_one_user_ms": round(scoring_ms, 3),
        },
    }
    with staged_folder(out_dir) as staging:
        write_outputs(staging, config, log, training.agent, results, rankings)
    logger.info(
        "time: data %.1fs, baselines %.1fs, training %.1fs, evaluation %.1fs",
        *(timer.seconds[name] for name in ("data", "baselines", "training", "evaluation")),
    )
    return results


def write_outputs(
    folder: Path,
    config: RunConfig,
    log: InteractionLog,
    agent: Recommender,
    results: dict[str, Any],
    rankings: dict[int, dict[int, np.ndarray]],
) -> None:
    """Write config, metrics, report, plots, checkpoint and recommendation files."""
    from metarec.agents.agent import MetaRLAgent

    atomic_write_text(folder / "config.yaml", config.to_yaml())
    atomic_write_text(folder / "metrics.json", json.dumps(results, indent=2))
    if isinstance(agent, MetaRLAgent):
        save_checkpoint(folder, agent, config, log, item_titles=item_titles(config, log))
    write_recommendations(folder / "recommendations", log, rankings)
    write_report(folder, results, config)


def item_titles(config: RunConfig, log: InteractionLog) -> dict[str, str]:
    """Return the titles of the log's items from the dataset folder, or {} when it has none."""
    from metarec.data.dataset import dataset_path
    from metarec.data.loaders import read_item_titles

    try:
        source = dataset_path(config.data)
        titles = read_item_titles(source if source.is_dir() else source.parent)
    except (DataError, OSError) as error:
        logger.warning("item titles not saved with the checkpoint: %s", error)
        return {}
    known = set(log.item_ids)
    return {item: title for item, title in titles.items() if item in known}


def write_recommendations(
    folder: Path, log: InteractionLog, rankings: dict[int, dict[int, np.ndarray]]
) -> None:
    """Write ``fewshot-k{K}.jsonl``: one line per test user with original ids, best first."""
    for shots, per_user in rankings.items():
        lines = [
            json.dumps(
                {"user_id": log.user_ids[user], "items": [log.item_ids[i] for i in items]},
                ensure_ascii=False,
            )
            for user, items in sorted(per_user.items(), key=lambda pair: log.user_ids[pair[0]])
        ]
        atomic_write_text(folder / f"fewshot-k{shots}.jsonl", "\n".join(lines) + "\n")
