"""Save and load trained agents: ``model.safetensors`` plus ``model.json`` metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from metarec import __version__
from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.config import RunConfig
from metarec.data.interactions import InteractionLog
from metarec.errors import DataError
from metarec.fileio import atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"
FORMAT = "metarec-checkpoint"
FORMAT_VERSION = 1
_NO_MISS_DECAY = -30.0
"""Raw ridge-head miss decay for checkpoints saved before it existed; softplus(-30) ~ 1e-13."""


@dataclass
class Checkpoint:
    """A loaded agent with the configuration and item ids it was trained with."""

    agent: MetaRLAgent
    config: RunConfig
    item_ids: tuple[str, ...]
    metadata: dict[str, Any]

    @property
    def item_index(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}


def save_checkpoint(
    folder: Path,
    agent: MetaRLAgent,
    config: RunConfig,
    log: InteractionLog,
    *,
    item_titles: dict[str, str] | None = None,
) -> None:
    """Write the policy weights and the metadata needed to use them without the dataset.

    ``item_titles`` (item id to title) is stored for the service's item search.
    """
    data = {
        "dataset": log.name,
        "n_items": log.n_items,
        "data_fingerprint": log.fingerprint(),
        "item_ids": list(log.item_ids),
    }
    extra = {} if item_titles is None else {"item_titles": item_titles}
    _write_checkpoint(folder, agent, config, data, extra)


def save_derived_checkpoint(
    folder: Path, agent: MetaRLAgent, base: Checkpoint, extra: dict[str, Any]
) -> None:
    """Write an agent trained further from ``base``, with the same items, dataset and config.

    ``extra`` adds fields to ``model.json``; the titles of ``base`` are kept.
    """
    keys = ("dataset", "n_items", "data_fingerprint", "item_ids")
    data = {key: base.metadata[key] for key in keys if key in base.metadata}
    data["item_ids"] = list(base.item_ids)
    data["n_items"] = len(base.item_ids)
    if "item_titles" in base.metadata:
        extra = {"item_titles": base.metadata["item_titles"], **extra}
    _write_checkpoint(folder, agent, base.config, data, extra)


def _write_checkpoint(
    folder: Path,
    agent: MetaRLAgent,
    config: RunConfig,
    data: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    state = {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in agent.policy.state_dict().items()
    }
    atomic_write_bytes(folder / WEIGHTS_FILE, save_tensors(state, metadata={"format": FORMAT}))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metarec_version": __version__,
        **data,
        "config": config.model_dump(mode="json"),
        **extra,
    }
    atomic_write_text(folder / METADATA_FILE, json.dumps(metadata, ensure_ascii=False))


def load_checkpoint(folder: Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load an agent saved by :func:`save_checkpoint` onto ``device``."""
    metadata = _read_metadata(folder)
    try:
        config = RunConfig.model_validate(metadata["config"])
        n_items = int(metadata["n_items"])
        item_ids = tuple(str(item_id) for item_id in metadata["item_ids"])
    except KeyError as error:
        raise DataError(f"missing field {error}", path=folder / METADATA_FILE) from None
    except (TypeError, ValueError) as error:
        # pydantic's ValidationError is a ValueError with a multi-line message.
        message = " ".join(str(error).split())
        raise DataError(f"invalid metadata: {message}", path=folder / METADATA_FILE) from None
    if len(item_ids) != n_items:
        raise DataError(
            f"metadata lists {len(item_ids)} item ids for n_items={n_items}",
            path=folder / METADATA_FILE,
        )
    policy = SlatePolicy(n_items, config.model)
    try:
        state = load_tensors((folder / WEIGHTS_FILE).read_bytes())
    except FileNotFoundError:
        raise DataError(f"missing {WEIGHTS_FILE}", path=folder, fix="rerun `metarec run`") from None
    except SafetensorError as error:
        raise DataError(f"unreadable weights: {error}", path=folder / WEIGHTS_FILE) from None
    _add_missing_ridge_terms(policy, state)
    try:
        policy.load_state_dict(state)
    except RuntimeError as error:
        raise DataError(
            f"weights do not match the model in {METADATA_FILE}: {str(error).splitlines()[0]}",
            path=folder / WEIGHTS_FILE,
        ) from None
    policy.to(torch.device(device)).eval()
    agent = MetaRLAgent(policy, config.adapt)
    return Checkpoint(agent, config, item_ids, metadata)


def _read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    if not folder.is_dir():
        raise DataError(
            "run folder not found", path=folder, fix="pass the folder `metarec run` wrote"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"no {METADATA_FILE} in the run folder",
            path=folder,
            fix="pass a folder written by `metarec run`",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"invalid JSON: {error}", path=path) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DataError(f"not a metarec checkpoint (format {FORMAT!r} expected)", path=path)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"checkpoint format version {metadata.get('format_version')} is not supported "
            f"(this metarec reads version {FORMAT_VERSION})",
            path=path,
        )
    return metadata


def _add_missing_ridge_terms(policy: SlatePolicy, state: dict[str, torch.Tensor]) -> None:
    """Fill in ridge-head terms that checkpoints written before them do not contain.

    The discount per clickless slate was added to the ridge head after
    format version 1 was fixed. A checkpoint without it gets a raw value
    whose softplus is about 1e-13, so the loaded model ranks as it did when
    it was saved.
    """
    key = "ridge.raw_miss_decay"
    if key in policy.state_dict() and key not in state:
        state[key] = torch.tensor(_NO_MISS_DECAY)
