"""Continue training a served agent on the events its users logged (``metarec train``)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarec.agents.agent import MetaRLAgent
from metarec.checkpoint import Checkpoint, load_checkpoint, save_derived_checkpoint
from metarec.errors import ConfigError, DataError
from metarec.fileio import atomic_write_text, staged_folder
from metarec.meta.losses import supervised_batch_loss
from metarec.meta.sampling import SupervisedSample
from metarec.meta.trainer import resolve_device, seed_everything
from metarec.pipeline import check_output_folder
from metarec.serving.models import weights_version
from metarec.serving.sessions import UserSessions
from metarec.serving.settings import DEFAULT_RATING_THRESHOLD
from metarec.serving.store import EventStore
from metarec.session import SKIP, Session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumeSettings:
    """Fine-tuning settings; written to ``train.json`` with the results."""

    epochs: int = 5
    lr: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 64
    samples_per_user: int = 4
    rating_threshold: float = DEFAULT_RATING_THRESHOLD
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "samples_per_user"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive; got {self.lr}")


@dataclass(frozen=True)
class LoggedUser:
    """One user's logged session cut into training tokens and the held-out last positive.

    ``heldout`` is the model's item index of the user's last chosen item, or -1 for
    a user with fewer than two chosen items, whose whole session is trained on.
    """

    train: Session
    heldout: int


def next_version_folder(run_dir: Path) -> Path:
    """Return the first ``RUN_DIR.vN`` (N from 2) that does not exist."""
    number = 2
    while (candidate := run_dir.with_name(f"{run_dir.name}.v{number}")).exists():
        number += 1
    return candidate


def logged_users(
    store: EventStore, item_index: dict[str, int], rating_threshold: float
) -> list[LoggedUser]:
    """Build every user's session from the store, as the service does, and hold out a positive."""
    sessions = UserSessions(rating_threshold)
    sessions.apply(store.iter_events())
    users = []
    for user_id in sorted(sessions.user_ids()):
        session = sessions.session(user_id, item_index)
        positives = np.flatnonzero(session.feedback != SKIP)
        if positives.size == 0:
            continue
        if positives.size < 2:
            users.append(LoggedUser(session, -1))
            continue
        last = int(positives[-1])
        kept = Session(session.items[:last], session.feedback[:last])
        users.append(LoggedUser(kept, int(session.items[last])))
    return users


def training_sample(user: LoggedUser, rng: np.random.Generator) -> SupervisedSample:
    """Cut the session before a random chosen item; the chosen items from there on are targets."""
    session = user.train
    positives = np.flatnonzero(session.feedback != SKIP)
    cut = int(rng.choice(positives))
    targets = np.unique(session.items[cut:][session.feedback[cut:] != SKIP])
    return SupervisedSample(Session(session.items[:cut], session.feedback[:cut]), targets)


def heldout_loss(agent: MetaRLAgent, users: list[LoggedUser], batch_size: int) -> float | None:
    """Return the mean next-item loss on each user's held-out item (None without any)."""
    samples = [
        SupervisedSample(user.train, np.array([user.heldout], dtype=np.int64))
        for user in users
        if user.heldout >= 0
    ]
    if not samples:
        return None
    agent.policy.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            total += float(supervised_batch_loss(agent.policy, batch)) * len(batch)
    return total / len(samples)


def fine_tune(
    checkpoint: Checkpoint, users: list[LoggedUser], settings: ResumeSettings
) -> list[dict[str, float | None]]:
    """Train the policy with the next-items loss on the logged sessions; return epoch records."""
    agent = checkpoint.agent
    policy = agent.policy
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    rng = np.random.default_rng(settings.seed)
    history: list[dict[str, float | None]] = [
        {"epoch": 0, "train_loss": None, "heldout_loss": heldout_loss(agent, users, 256)}
    ]
    order = np.repeat(np.arange(len(users)), settings.samples_per_user)
    for epoch in range(1, settings.epochs + 1):
        policy.train()
        shuffled = rng.permutation(order)
        losses = []
        for start in range(0, shuffled.size, settings.batch_size):
            batch = shuffled[start : start + settings.batch_size]
            samples = [training_sample(users[int(user)], rng) for user in batch]
            loss = supervised_batch_loss(policy, samples)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "heldout_loss": heldout_loss(agent, users, 256),
        }
        logger.info("train epoch %d: %s", epoch, record)
        history.append(record)
    policy.eval()
    return history


def resume_training(
    run_dir: Path, events_url: str, out: Path | None, settings: ResumeSettings
) -> dict[str, Any]:
    """Fine-tune the checkpoint in ``run_dir`` on the logged events and write it to ``out``.

    Returns the summary written to ``out/train.json``.
    """
    run_dir = run_dir.expanduser().resolve()
    target = check_output_folder(out if out is not None else next_version_folder(run_dir))
    if target == run_dir:
        raise ConfigError(f"--out {target} is the run being resumed; pass a new folder")
    seed_everything(settings.seed)
    checkpoint = load_checkpoint(run_dir, resolve_device(settings.device))
    store = EventStore(events_url, read_only=True, option="--events")
    try:
        users = logged_users(store, checkpoint.item_index, settings.rating_threshold)
    finally:
        store.close()
    if not users:
        raise DataError(
            f"the event store {store.display_url} has no user with a positive event "
            "for this model's items",
            fix="log clicks, purchases or ratings before training",
        )
    logger.info("fine-tuning on %d users' logged sessions", len(users))
    history = fine_tune(checkpoint, users, settings)
    summary = {
        "parent": str(run_dir),
        "parent_version": weights_version(run_dir),
        "events": store.display_url,
        "users": len(users),
        "heldout_users": sum(1 for user in users if user.heldout >= 0),
        "settings": asdict(settings),
        "history": history,
    }
    with staged_folder(target) as staging:
        save_derived_checkpoint(
            staging, checkpoint.agent, checkpoint, {"parent_version": summary["parent_version"]}
        )
        atomic_write_text(staging / "config.yaml", checkpoint.config.to_yaml())
        atomic_write_text(staging / "train.json", json.dumps(summary, indent=2))
    summary["out"] = str(target)
    summary["version"] = weights_version(target)
    return summary
