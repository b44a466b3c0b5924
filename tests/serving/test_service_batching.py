"""Micro-batched scoring: concurrent requests share a forward pass and keep offline rankings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_helpers import API_KEY, events

from metarec.checkpoint import load_checkpoint
from metarec.serving.app import create_app
from metarec.serving.batching import RecommendationBatcher, rank_batch
from metarec.serving.models import load_snapshot
from metarec.serving.settings import ServiceSettings
from metarec.session import Session

USERS = 24


def user_items(item_ids: tuple[str, ...], user: int) -> list[str]:
    """Return a history of distinct items per user, of lengths 0 to 46."""
    return [item_ids[(user * 37 + step * 11) % len(item_ids)] for step in range(2 * user)]


async def post_and_rank(settings: ServiceSettings, item_ids: tuple[str, ...]) -> list[list[str]]:
    """Post every user's history, then request all slates at once and return them in user order."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        batch = []
        for user in range(USERS):
            batch += events(f"u{user}", user_items(item_ids, user), "rating", f"r{user}", 5.0)
        posted = await client.post(
            "/v1/events", json={"events": batch}, headers={"X-API-Key": API_KEY}
        )
        assert posted.status_code == 200, posted.text
        responses = await asyncio.gather(
            *[
                client.post("/v1/recommendations", json={"user_id": f"u{user}", "k": 20})
                for user in range(USERS)
            ]
        )
    app.state.service.batcher.close()
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [[item["item_id"] for item in r.json()["items"]] for r in responses]


def test_concurrent_slates_match_offline(
    make_settings: Callable[..., ServiceSettings], checkpoint_dir: Path
) -> None:
    checkpoint = load_checkpoint(checkpoint_dir)
    index = checkpoint.item_index
    served = asyncio.run(post_and_rank(make_settings(), checkpoint.item_ids))
    for user, slate in enumerate(served):
        history = np.array([index[i] for i in user_items(checkpoint.item_ids, user)])
        session = Session.from_history(history)
        offline = checkpoint.agent.recommend([session], 20)[0]
        assert slate == [checkpoint.item_ids[i] for i in offline], f"user u{user}"


def test_rank_batch_equals_single_sessions(checkpoint_dir: Path) -> None:
    snapshot = load_snapshot(checkpoint_dir)
    rng = np.random.default_rng(0)
    n_items = len(snapshot.checkpoint.item_ids)
    sessions = [
        Session.from_history(rng.choice(n_items, size=size, replace=False))
        for size in (0, 1, 4, 30, 7)
    ]
    excludes = [np.array([0, 1], dtype=np.int64)] + [np.zeros(0, dtype=np.int64)] * 4
    ks = [5, 10, 20, 10, 1]
    batched = rank_batch(snapshot, sessions, ks, excludes)
    for row, session in enumerate(sessions):
        single = rank_batch(snapshot, [session], [ks[row]], [excludes[row]])[0]
        assert [item for item, _ in batched[row]] == [item for item, _ in single]
        assert np.allclose([s for _, s in batched[row]], [s for _, s in single], atol=1e-5)
        assert len(batched[row]) == ks[row]
    assert not {0, 1} & {item for item, _ in batched[0]}


def test_batcher_groups_concurrent_requests(checkpoint_dir: Path) -> None:
    snapshot = load_snapshot(checkpoint_dir)
    batcher = RecommendationBatcher(max_batch_size=8, max_wait_s=0.05)
    empty = np.zeros(0, dtype=np.int64)
    sessions = [Session.from_history(np.array([item], dtype=np.int64)) for item in range(20)]

    async def rank_all() -> list[list[tuple[int, float]]]:
        return await asyncio.gather(*[batcher.rank(snapshot, s, 10, empty) for s in sessions])

    results = asyncio.run(rank_all())
    batcher.close()
    # All 20 requests are queued before the collector first runs: batches of 8, 8 and 4.
    assert batcher.requests_scored == 20
    assert batcher.batches_scored == 3
    for session, ranked in zip(sessions, results, strict=True):
        assert len(ranked) == 10
        assert int(session.items[0]) not in {item for item, _ in ranked}


def test_batcher_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_batch_size must be at least 1; got 0"):
        RecommendationBatcher(max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_s must be 0 or more"):
        RecommendationBatcher(max_wait_s=-1.0)
