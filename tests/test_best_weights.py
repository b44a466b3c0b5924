"""Keeping the weights of the best validated candidate."""

from __future__ import annotations

import torch
from torch import nn

from metarec.meta.selection import BestWeights


def _set(layer: nn.Linear, value: float) -> None:
    with torch.no_grad():
        layer.weight.fill_(value)


def test_best_weights_restored_with_keep_best() -> None:
    layer = nn.Linear(2, 1)
    _set(layer, 1.0)
    history = [{"iteration": 0.0, "score": 0.5}]
    best = BestWeights(layer, history[0])
    _set(layer, 2.0)
    history.append({"iteration": 1.0, "score": 0.9})
    assert best.offer(layer, history[-1])
    _set(layer, 3.0)
    history.append({"iteration": 2.0, "score": 0.7})
    assert not best.offer(layer, history[-1])
    chosen = best.finish(layer, history, True, "test", "iteration")
    assert chosen["iteration"] == 1.0
    assert torch.all(layer.weight == 2.0)


def test_best_weights_ties_keep_earlier() -> None:
    layer = nn.Linear(2, 1)
    best = BestWeights(layer, {"iteration": 0.0, "score": 0.5})
    assert not best.offer(layer, {"iteration": 1.0, "score": 0.5})
    assert best.record["iteration"] == 0.0


def test_last_weights_kept_without_keep_best() -> None:
    layer = nn.Linear(2, 1)
    history = [{"epoch": 0.0, "score": 0.9}]
    best = BestWeights(layer, history[0])
    _set(layer, 4.0)
    history.append({"epoch": 1.0, "score": 0.1})
    best.offer(layer, history[-1])
    chosen = best.finish(layer, history, False, "test", "epoch")
    assert chosen["epoch"] == 1.0
    assert torch.all(layer.weight == 4.0)
