"""Dynamic micro-batching: concurrent recommendation requests share one forward pass.

Each request reads its user's session when it arrives, so it contains every event
acknowledged before it, and queues the session here. One collector task takes
the queued requests, up to ``max_batch_size``, and scores them together on a
single scoring thread, which keeps torch off the event loop. While a batch is
scored, new requests queue up, so the batch size follows the load by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from metarec.recommender import mask_shown, top_k
from metarec.serving.models import ModelSnapshot
from metarec.serving.settings import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_S
from metarec.session import Session

logger = logging.getLogger(__name__)


RankedItems = list[tuple[int, float]]


@dataclass
class RankRequest:
    """One queued request: the session as it was on arrival and the slate it needs."""

    snapshot: ModelSnapshot
    session: Session
    k: int
    exclude: np.ndarray
    future: asyncio.Future[RankedItems]


def rank_batch(
    snapshot: ModelSnapshot, sessions: list[Session], ks: list[int], excludes: list[np.ndarray]
) -> list[RankedItems]:
    """Score sessions in one forward pass and return each one's best (item, score) pairs.

    Items of a session and of its ``exclude`` are left out, as
    :meth:`metarec.recommender.Recommender.recommend` leaves out shown items.
    """
    agent = snapshot.checkpoint.agent
    # First-order MAML steps need autograd, so only the plain forward pass drops it.
    mode = torch.inference_mode() if agent.adapt.steps == 0 else nullcontext()
    with mode:
        scores = mask_shown(agent.score(sessions), sessions)
    for row, exclude in enumerate(excludes):
        scores[row, exclude] = -np.inf
    ranked = top_k(scores, max(ks))
    results = []
    for row, k in enumerate(ks):
        row_scores = scores[row]
        results.append(
            [
                (int(item), float(row_scores[item]))
                for item in ranked[row, :k]
                if np.isfinite(row_scores[item])
            ]
        )
    return results


class RecommendationBatcher:
    """Queues ranking requests and scores them in batches on one worker thread.

    ``max_wait_s`` bounds how long the collector keeps adding requests that are
    still arriving once a batch has started. It stops adding as soon as it finds
    the queue empty, so a lone request is scored at once.
    """

    def __init__(
        self, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_wait_s: float = DEFAULT_MAX_WAIT_S
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1; got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be 0 or more; got {max_wait_s}")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[RankRequest] | None = None
        self._collector: asyncio.Task[None] | None = None
        # Forward passes run and requests they scored, for tests and the debug log.
        self.batches_scored = 0
        self.requests_scored = 0

    async def rank(
        self, snapshot: ModelSnapshot, session: Session, k: int, exclude: np.ndarray
    ) -> RankedItems:
        """Queue one session and return its best ``k`` (item index, score) pairs."""
        queue = self._running_queue()
        future: asyncio.Future[RankedItems] = asyncio.get_running_loop().create_future()
        queue.put_nowait(RankRequest(snapshot, session, k, exclude, future))
        return await future

    def close(self) -> None:
        """Stop the collector task and the scoring thread."""
        if self._collector is not None:
            self._collector.cancel()
        self._collector = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def _running_queue(self) -> asyncio.Queue[RankRequest]:
        """Return the queue of the running event loop, starting the collector on first use.

        A new loop (each TestClient context runs its own) gets a new queue and collector.
        """
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or self._collector_stopped():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._collector = loop.create_task(self._collect(self._queue))
        return self._queue

    def _collector_stopped(self) -> bool:
        return self._collector is None or self._collector.done()

    async def _collect(self, queue: asyncio.Queue[RankRequest]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                before = len(batch)
                while len(batch) < self.max_batch_size and not queue.empty():
                    batch.append(queue.get_nowait())
                if len(batch) == before or time.monotonic() >= deadline:
                    break
                # Let the handlers that are parsing requests reach the queue.
                await asyncio.sleep(0)
            await self._score(loop, batch)

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[RankRequest]) -> None:
        """Score a batch, one forward pass per model snapshot, and resolve its futures."""
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(1, "metarec-scoring")
        groups: dict[int, list[RankRequest]] = {}
        for request in batch:
            groups.setdefault(id(request.snapshot), []).append(request)
        for requests in groups.values():
            sessions = [r.session for r in requests]
            ks = [r.k for r in requests]
            excludes = [r.exclude for r in requests]
            try:
                results = await loop.run_in_executor(
                    executor, rank_batch, requests[0].snapshot, sessions, ks, excludes
                )
            except Exception as error:
                logger.exception("scoring a batch of %d requests failed", len(requests))
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.batches_scored += 1
            self.requests_scored += len(requests)
            logger.debug("scored a batch of %d requests", len(requests))
            for request, ranked in zip(requests, results, strict=True):
                if not request.future.done():
                    request.future.set_result(ranked)
