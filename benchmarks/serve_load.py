"""Load test of `metarec serve` next to a constant FastAPI endpoint (the framework floor).

Usage:
    python benchmarks/serve_load.py [--run RUN_DIR | --data-dir DIR] [--rate 200]
                                    [--duration 60] [--closed-seconds 10] [--json FILE]

One run starts each server as its own process on 127.0.0.1 and measures, side by side:

- latency of POST /v1/recommendations at a fixed request rate (open loop: requests leave on
  schedule, and latency counts from the scheduled time, so queueing shows in it);
- the highest sustained throughput of a closed loop over several numbers of concurrent
  clients;
- for the service only, event ingestion per second (batches posted to /v1/events), then a
  check that every acknowledged event is in the users' histories and that a re-posted batch
  is counted as duplicates.

The floor is the same request and response shapes served by FastAPI on uvicorn without a
model or a store. The service writes to a SQLite file in a temporary folder (or to
``--db-url``), never to the run folder. Without ``--run`` the checkpoint is runs/ml-100k when
present, or else a tiny one trained with tests/configs/tiny.yaml on ``--data-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO_ROOT / "tests" / "configs" / "tiny.yaml"
DEFAULT_RUN = REPO_ROOT / "runs" / "ml-100k"
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 10.0
SLATE_SIZE = 10
AIMS = {"p99_ms": 25.0, "throughput_ratio": 3.0}


# The floor server


class RecommendationRequest(BaseModel):
    """The request body of POST /v1/recommendations, as the floor server parses it."""

    user_id: str = Field(min_length=1, max_length=256)
    k: int = Field(default=SLATE_SIZE, ge=1, le=100)
    exclude: list[str] = Field(default_factory=list)


def build_floor_app() -> FastAPI:
    """Build a FastAPI app whose recommendation endpoint returns a constant slate.

    It parses the same request body as the service, so the floor includes validation and
    JSON encoding but no model, no session and no store.
    """
    items = [{"item_id": str(index), "score": 1.0 / (index + 1)} for index in range(100)]
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/recommendations")
    def recommend(request: RecommendationRequest) -> dict[str, Any]:
        return {
            "user_id": request.user_id,
            "items": items[: request.k],
            "model_version": "constant",
            "request_id": uuid.uuid4().hex,
        }

    return app


def serve_floor(port: int) -> None:
    uvicorn.run(
        build_floor_app(), host="127.0.0.1", port=port, access_log=False, log_level="warning"
    )


# Server processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def wait_ready(server: Server, path: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.base_url + path, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{server.name} not ready after {START_TIMEOUT_S:.0f} s: {server.log_path}")


@contextmanager
def running(
    name: str, command: list[str], env: dict[str, str], port: int, ready_path: str, logs: Path
) -> Iterator[Server]:
    """Start a server process, wait until ``ready_path`` returns 200, stop it on exit."""
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server, ready_path)
        yield server
    finally:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            print(f"{name} exited early with {process.returncode}:\n{tail}", file=sys.stderr)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


# Load generation


@dataclass
class LoadResult:
    """Latencies in milliseconds of the requests that succeeded, and the failure count."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    first_error: str = ""

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "throughput_per_s": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
            "first_error": self.first_error,
        }


async def post_json(
    session: aiohttp.ClientSession, url: str, body: bytes, api_key: str | None = None
) -> Any:
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    async with session.post(url, data=body, headers=headers) as response:
        payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
        return json.loads(payload)


async def open_loop(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], rate: float, seconds: float
) -> LoadResult:
    """Send ``rate * seconds`` requests on a fixed schedule, whether or not earlier ones ended."""
    count = int(rate * seconds)
    latencies: list[float] = []
    failures: list[str] = []

    async def one(index: int, scheduled: float) -> None:
        try:
            await post_json(session, url, bodies[index % len(bodies)])
        except (aiohttp.ClientError, RuntimeError, TimeoutError) as error:
            failures.append(repr(error))
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)

    tasks = []
    started = time.perf_counter()
    for index in range(count):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    return LoadResult(count, len(failures), seconds, latencies, failures[0] if failures else "")


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[bytes],
    clients: int,
    seconds: float,
    max_requests: int,
) -> LoadResult:
    """Run ``clients`` workers that each send the next request when the last one ends."""
    latencies: list[float] = []
    failures: list[str] = []
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < max_requests:
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            try:
                await post_json(session, url, body)
            except (aiohttp.ClientError, RuntimeError, TimeoutError) as error:
                failures.append(repr(error))
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return LoadResult(sent, len(failures), elapsed, latencies, failures[0] if failures else "")


def client_session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def scrape_route_seconds(
    session: aiohttp.ClientSession, base_url: str
) -> tuple[float, float] | None:
    """Return (sum, count) of the service's own latency histogram for recommendations.

    The floor has no /metrics, so it returns None there.
    """
    async with session.get(base_url + "/metrics") as response:
        if response.status != 200:
            return None
        text = await response.text()
    totals = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if 'route="/v1/recommendations"' not in name or 'method="POST"' not in name:
            continue
        for suffix in ("_sum", "_count"):
            if name.startswith(f"metarec_http_request_duration_seconds{suffix}{{"):
                totals[suffix] = float(value)
    if len(totals) != 2:
        return None
    return totals["_sum"], totals["_count"]


def server_mean_ms(before: tuple | None, after: tuple | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]) * 1000, 2)


async def measure_recommendations(
    base_url: str, bodies: Sequence[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    url = base_url + "/v1/recommendations"
    async with client_session(max(args.clients)) as session:
        await closed_loop(session, url, bodies, 4, seconds=3.0, max_requests=args.warmup)
        before = await scrape_route_seconds(session, base_url)
        fixed = await open_loop(session, url, bodies, args.rate, args.duration)
        after = await scrape_route_seconds(session, base_url)
        ramp = []
        for clients in args.clients:
            limit = int(clients * args.closed_seconds * 2000)
            ramp.append(
                await closed_loop(session, url, bodies, clients, args.closed_seconds, limit)
            )
    levels = list(zip(args.clients, ramp, strict=True))
    best_clients, best = max(
        levels, key=lambda pair: pair[1].throughput if pair[1].errors == 0 else -1.0
    )
    return {
        "open_loop": fixed.summary() | {"server_mean_ms": server_mean_ms(before, after)},
        "closed_loop": {str(clients): result.summary() for clients, result in levels},
        "max_throughput": {"clients": best_clients, **best.summary()},
    }


# Event ingestion


def make_events(item_ids: Sequence[str], users: int, per_user: int, seed: int) -> list[dict]:
    """Build ``users * per_user`` events of every type on distinct items per user."""
    rng = np.random.default_rng(seed)
    kinds = ["rating", "click", "skip", "impression", "purchase"]
    events = []
    for user in range(users):
        chosen = rng.choice(len(item_ids), size=min(per_user, len(item_ids)), replace=False)
        for position, item in enumerate(chosen):
            kind = kinds[int(rng.integers(len(kinds)))]
            events.append(
                {
                    "event_id": f"bench-{user}-{position}",
                    "user_id": f"bench-user-{user}",
                    "item_id": item_ids[int(item)],
                    "type": kind,
                    "value": float(rng.integers(1, 6)) if kind == "rating" else None,
                }
            )
    # Interleave users, as concurrent clients would.
    order = rng.permutation(len(events))
    return [events[int(index)] for index in order]


async def ingest(
    base_url: str, api_key: str, events: list[dict], batch_size: int, clients: int
) -> dict[str, Any]:
    url = base_url + "/v1/events"
    batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    bodies = [json.dumps({"events": batch}).encode() for batch in batches]
    accepted = duplicates = 0
    failures: list[str] = []
    pending = list(range(len(bodies)))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, duplicates
        while pending:
            body = bodies[pending.pop()]
            try:
                payload = await post_json(session, url, body, api_key)
            except (aiohttp.ClientError, RuntimeError, TimeoutError) as error:
                failures.append(repr(error))
                continue
            accepted += payload["accepted"]
            duplicates += payload["duplicates"]

    async with client_session(clients) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
        repost = await post_json(session, url, bodies[0], api_key)
        lost = await count_lost(session, base_url, events)
    return {
        "events": len(events),
        "batches": len(batches),
        "batch_size": batch_size,
        "clients": clients,
        "seconds": round(seconds, 2),
        "events_per_s": round(accepted / seconds, 1),
        "accepted": accepted,
        "duplicates": duplicates,
        "errors": len(failures),
        "first_error": failures[0] if failures else "",
        "lost": lost,
        "repost_duplicates": repost.get("duplicates"),
        "repost_size": len(batches[0]),
    }


async def count_lost(session: aiohttp.ClientSession, base_url: str, events: list[dict]) -> int:
    """Count the posted events that are missing from their user's stored history."""
    expected: dict[str, set[str]] = {}
    for event in events:
        expected.setdefault(event["user_id"], set()).add(event["event_id"])
    lost = 0
    for user_id, event_ids in expected.items():
        async with session.get(f"{base_url}/v1/users/{user_id}/history") as response:
            response.raise_for_status()
            stored = {event["event_id"] for event in (await response.json())["events"]}
        lost += len(event_ids - stored)
    return lost


# Checkpoint


def resolve_run(args: argparse.Namespace, workdir: Path) -> Path:
    if args.run is not None:
        return Path(args.run)
    if (DEFAULT_RUN / "model.json").is_file():
        return DEFAULT_RUN
    from metarec.config import load_config
    from metarec.pipeline import run

    overrides = [f"data.data_dir={args.data_dir}"] if args.data_dir else []
    out = workdir / "tiny-run"
    print(f"no --run and no {DEFAULT_RUN}: training a tiny checkpoint into {out}", flush=True)
    run(load_config(TINY_CONFIG, overrides), out)
    return out


def recommendation_bodies(users: Sequence[str], seed: int) -> list[bytes]:
    """Request bodies for known users and, one in ten, new (cold-start) users."""
    rng = np.random.default_rng(seed)
    bodies = []
    for index in range(5000):
        known_user = users[int(rng.integers(len(users)))]
        user = f"bench-cold-{index}" if index % 10 == 9 else known_user
        bodies.append(json.dumps({"user_id": user, "k": SLATE_SIZE}).encode())
    return bodies


# Report


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor > 0 else "n/a"


def comparison_rows(service: dict, floor: dict, args: argparse.Namespace) -> list[tuple]:
    """Rows of (measure, service figure, floor figure, ratio) for the side-by-side table."""
    s_open, f_open = service["open_loop"], floor["open_loop"]
    s_max, f_max = service["max_throughput"], floor["max_throughput"]
    s_rate, f_rate = s_max["throughput_per_s"], f_max["throughput_per_s"]
    rows: list[tuple] = [
        (f"open loop {args.rate:g}/s, {args.duration:g} s: p50 ms", s_open["p50_ms"],
         f_open["p50_ms"], ratio(s_open["p50_ms"], f_open["p50_ms"])),
        ("open loop: p99 ms", s_open["p99_ms"], f_open["p99_ms"],
         ratio(s_open["p99_ms"], f_open["p99_ms"])),
        ("open loop: max ms", s_open["max_ms"], f_open["max_ms"], ""),
        ("open loop: mean ms inside the server", s_open["server_mean_ms"], "n/a", ""),
        ("open loop: requests / errors", f"{s_open['requests']} / {s_open['errors']}",
         f"{f_open['requests']} / {f_open['errors']}", ""),
        ("max throughput req/s (closed loop)", s_rate, f_rate,
         ratio(f_rate, s_rate) + " (floor / service)"),
        ("  at clients", s_max["clients"], f_max["clients"], ""),
        ("  p50 / p99 ms", f"{s_max['p50_ms']} / {s_max['p99_ms']}",
         f"{f_max['p50_ms']} / {f_max['p99_ms']}", ""),
    ]  # fmt: skip

    for clients in args.clients:
        s_row, f_row = service["closed_loop"][str(clients)], floor["closed_loop"][str(clients)]
        rows.append(
            (
                f"closed loop {clients} clients: req/s, errors",
                f"{s_row['throughput_per_s']}, {s_row['errors']}",
                f"{f_row['throughput_per_s']}, {f_row['errors']}",
                "",
            )
        )
    return rows


def format_report(service: dict, floor: dict, events: dict, args: argparse.Namespace) -> str:
    lines = [f"{'measure':<44}{'metarec':>16}{'floor':>16}   ratio"]
    for name, ours, theirs, ratio_text in comparison_rows(service, floor, args):
        lines.append(f"{name:<44}{ours!s:>16}{theirs!s:>16}   {ratio_text}")

    lines.append("")
    lines.append(
        f"event ingestion: {events['events_per_s']} events/s ({events['events']} events in "
        f"{events['batches']} batches of {events['batch_size']}, {events['clients']} clients, "
        f"{events['seconds']} s); accepted {events['accepted']}, duplicates "
        f"{events['duplicates']}, errors {events['errors']}, lost {events['lost']}; re-posted "
        f"batch: {events['repost_duplicates']} of {events['repost_size']} counted as duplicates"
    )

    lines.append("")
    lines += first_errors(service, floor, events)
    lines += check_aims(service, floor, events)
    return "\n".join(lines)


def first_errors(service: dict, floor: dict, events: dict) -> list[str]:
    """List the first error of every measurement that had one, to show why it failed."""
    found = []
    for name, results in (("metarec", service), ("floor", floor)):
        measured = {"open loop": results["open_loop"]}
        measured |= {f"{n} clients": row for n, row in results["closed_loop"].items()}
        for label, row in measured.items():
            if row["first_error"]:
                found.append(f"first error, {name} {label}: {row['first_error']}")
    if events["first_error"]:
        found.append(f"first error, event ingestion: {events['first_error']}")
    return found


def check_aims(service: dict, floor: dict, events: dict) -> list[str]:
    p99 = service["open_loop"]["p99_ms"]
    throughput_ratio = (
        floor["max_throughput"]["throughput_per_s"] / service["max_throughput"]["throughput_per_s"]
    )
    errors = service["open_loop"]["errors"] + sum(
        row["errors"] for row in service["closed_loop"].values()
    )
    errors += events["errors"]
    checks = [
        (f"p99 under {AIMS['p99_ms']:g} ms at the fixed rate", p99 < AIMS["p99_ms"], f"{p99} ms"),
        (
            f"throughput within {AIMS['throughput_ratio']:g}x of the floor",
            throughput_ratio <= AIMS["throughput_ratio"],
            f"{throughput_ratio:.2f}x",
        ),
        ("zero errors", errors == 0, f"{errors} errors"),
        ("zero lost events", events["lost"] == 0, f"{events['lost']} lost"),
    ]
    return [f"aim: {name}: {'met' if ok else 'NOT met'} ({got})" for name, ok, got in checks]


def machine_line() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, load average {load}"
    )


# Main


def service_command(run_dir: Path, port: int, db_url: str, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "metarec.cli", "serve", str(run_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--db-url", db_url]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    return command + shlex.split(args.service_args)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="metarec-load-") as folder:
        workdir = Path(folder)
        run_dir = resolve_run(args, workdir)
        item_ids = json.loads((run_dir / "model.json").read_text(encoding="utf-8"))["item_ids"]
        api_key = secrets.token_urlsafe(24)
        env = {**os.environ, "METAREC_API_KEYS": api_key}
        db_url = args.db_url or f"sqlite:///{workdir / 'events.db'}"
        print(machine_line(), flush=True)
        print(f"checkpoint: {run_dir} ({len(item_ids)} items), store: {db_url}", flush=True)

        port = free_port()
        command = service_command(run_dir, port, db_url, args)
        print(f"service: {shlex.join(command[1:])}", flush=True)
        with running("metarec", command, env, port, "/readyz", workdir) as server:
            events = make_events(item_ids, args.event_users, args.events_per_user, args.seed)
            ingestion = asyncio.run(
                ingest(server.base_url, api_key, events, args.batch_size, args.event_clients)
            )
            users = sorted({event["user_id"] for event in events})
            bodies = recommendation_bodies(users, args.seed)
            service = asyncio.run(measure_recommendations(server.base_url, bodies, args))

        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(port)]
        with running("floor", command, env, port, "/healthz", workdir) as server:
            floor = asyncio.run(measure_recommendations(server.base_url, bodies, args))

    print(format_report(service, floor, ingestion, args), flush=True)
    return {"service": service, "floor": floor, "ingestion": ingestion, "args": vars(args)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--run", type=Path, default=None, help="checkpoint folder (default runs/ml-100k)")
    add("--data-dir", type=Path, default=None, help="folder with ml-100k/ for a tiny run")
    add("--db-url", default=None, help="event store URL (default: SQLite in a temporary folder)")
    add("--threads", type=int, default=None, help="torch threads of the service")
    add(
        "--service-args",
        default="",
        help="more options of `metarec serve`, e.g. --service-args=--quiet",
    )

    add("--rate", type=float, default=200.0, help="open-loop requests per second")
    add("--duration", type=float, default=60.0, help="open-loop seconds")
    add("--clients", type=int, nargs="+", default=[1, 4, 16, 64], help="closed-loop clients")
    add("--closed-seconds", type=float, default=10.0, help="seconds per closed-loop level")
    add("--warmup", type=int, default=300, help="warm-up requests before measuring")

    add("--event-users", type=int, default=200, help="users in the ingestion test")
    add("--events-per-user", type=int, default=50, help="events per user")
    add("--batch-size", type=int, default=100, help="events per POST /v1/events")
    add("--event-clients", type=int, default=4, help="concurrent ingestion clients")
    add("--seed", type=int, default=0, help="seed of the generated users, items and events")
    add("--json", type=Path, default=None, help="also write every figure to this JSON file")
    add("--serve-floor", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.closed_seconds <= 0:
        parser.error("--rate, --duration and --closed-seconds must be positive")
    if not 1 <= args.batch_size <= 1000:
        parser.error(f"--batch-size must be 1 to 1000 (the service's limit), got {args.batch_size}")
    counts = [*args.clients, args.event_users, args.events_per_user, args.event_clients]
    if min(counts) < 1:
        parser.error("--clients, --event-users, --events-per-user and --event-clients must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_floor is not None:
        serve_floor(args.serve_floor)
        return
    results = run_benchmark(args)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
