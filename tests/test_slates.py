"""Plackett-Luce slate probabilities against brute force, and Gumbel-top-k sampling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from metarec.meta.slates import (
    first_position_entropy,
    position_log_probs,
    sample_slate,
    slate_log_prob,
)

LOGITS = [[0.3, -1.2, 2.0, 0.0, 0.7], [1.5, 1.5, -0.5, 3.0, -2.0]]
SLATES = [[2, 0, 4], [3, 1, 0]]
MASKED = -1e9


def sequential_log_prob(logits: list[float], slate: list[int]) -> float:
    """Pick each slate item by a softmax over the items not placed yet, as written out."""
    remaining = list(range(len(logits)))
    total = 0.0
    for item in slate:
        normaliser = sum(math.exp(logits[other]) for other in remaining)
        total += logits[item] - math.log(normaliser)
        remaining.remove(item)
    return total


def test_log_prob_matches_brute_force() -> None:
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    slates = torch.tensor(SLATES)
    result = slate_log_prob(logits, slates)
    for row in range(2):
        expected = sequential_log_prob(LOGITS[row], SLATES[row])
        assert result[row].item() == pytest.approx(expected, rel=1e-9)


def test_log_prob_float32_close() -> None:
    result = slate_log_prob(torch.tensor(LOGITS), torch.tensor(SLATES))
    for row in range(2):
        expected = sequential_log_prob(LOGITS[row], SLATES[row])
        assert result[row].item() == pytest.approx(expected, rel=1e-5)


def test_position_terms_match_brute_force() -> None:
    logits = torch.tensor(LOGITS[:1], dtype=torch.float64)
    terms = position_log_probs(logits, torch.tensor(SLATES[:1]))
    for position in range(3):
        prefix = SLATES[0][: position + 1]
        before = sequential_log_prob(LOGITS[0], prefix[:-1]) if position else 0.0
        expected = sequential_log_prob(LOGITS[0], prefix) - before
        assert terms[0, position].item() == pytest.approx(expected, rel=1e-9)


def test_size_two_slates_sum_to_one() -> None:
    slates = torch.tensor(list(itertools.permutations(range(4), 2)))
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.1]], dtype=torch.float64).expand(len(slates), -1)
    total = slate_log_prob(logits, slates).exp().sum()
    assert slates.shape == (12, 2)
    assert total.item() == pytest.approx(1.0, abs=1e-12)


def test_full_permutations_sum_to_one() -> None:
    slates = torch.tensor(list(itertools.permutations(range(4))))
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.1]], dtype=torch.float64).expand(len(slates), -1)
    total = slate_log_prob(logits, slates).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_log_prob_has_gradient() -> None:
    logits = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    slate_log_prob(logits, torch.tensor(SLATES)).sum().backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_sample_skips_masked_items() -> None:
    logits = torch.tensor([[0.0, MASKED, 1.0, MASKED, -0.5, 0.3, MASKED]]).expand(2000, -1)
    generator = torch.Generator().manual_seed(0)
    slates = sample_slate(logits, 4, generator)
    assert slates.shape == (2000, 4)
    assert not torch.isin(slates, torch.tensor([1, 3, 6])).any()


def test_sample_items_distinct() -> None:
    logits = torch.zeros(500, 8)
    slates = sample_slate(logits, 5, torch.Generator().manual_seed(1))
    distinct = torch.tensor([len(set(row.tolist())) for row in slates])
    assert (distinct == 5).all()


def test_sample_first_item_frequency() -> None:
    row = torch.tensor([1.0, 0.0, 2.0, -1.0, MASKED, 0.5])
    draws = 4000
    slates = sample_slate(row.expand(draws, -1), 3, torch.Generator().manual_seed(2))
    frequency = torch.bincount(slates[:, 0], minlength=row.shape[0]).double() / draws
    expected = torch.softmax(row.double(), dim=0)
    # The standard error of each frequency is below sqrt(0.25 / 4000) = 0.008.
    for item in range(row.shape[0]):
        assert frequency[item].item() == pytest.approx(expected[item].item(), abs=0.03)


def test_sample_seeded_repeatable() -> None:
    logits = torch.randn(50, 20, generator=torch.Generator().manual_seed(3))
    first = sample_slate(logits, 5, torch.Generator().manual_seed(4))
    second = sample_slate(logits, 5, torch.Generator().manual_seed(4))
    assert torch.equal(first, second)


def test_entropy_of_uniform_and_peaked() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    entropy = first_position_entropy(logits)
    assert entropy[0].item() == pytest.approx(math.log(4))
    assert entropy[1].item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("logits", "slate"),
    [
        ([20.0, 0.0, -1.0, -2.0], [0, 1]),
        ([10.0, 0.0, -5.0], [0, 1, 2]),
        ([15.0, 15.0, 0.0, 0.0], [0, 1, 2]),
    ],
)
def test_log_prob_peaked_logits(logits: list[float], slate: list[int]) -> None:
    # The first items carry more than 1 - 1e-6 of the mass, so the rest must not round away.
    result = slate_log_prob(torch.tensor([logits], dtype=torch.float64), torch.tensor([slate]))
    assert result.item() == pytest.approx(sequential_log_prob(logits, slate), rel=1e-9)


def test_log_prob_gradient_full_permutation() -> None:
    logits = torch.tensor([[0.4, -0.3, 1.1]], dtype=torch.float64, requires_grad=True)
    slate_log_prob(logits, torch.tensor([[2, 0, 1]])).sum().backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
