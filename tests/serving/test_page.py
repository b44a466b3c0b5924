"""The page served at ``/``, driven in headless Chromium against the real service."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_ENV = "METAREC_CHROMIUM"
API_KEY = "page-test-key"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# MovieLens-100K item ids and a search text for each title.
LIKED_ITEMS = {"50": "Star Wars", "172": "Empire Strikes Back", "181": "Return of the Jedi"}


def find_chromium() -> str | None:
    return (
        os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    )


def skip_or_fail(reason: str) -> NoReturn:
    """Skip on a developer machine, but fail in CI, where the browser test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test may not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = find_chromium()
    if executable is None:
        skip_or_fail(f"no Chromium found: run `apt-get install chromium` or set ${CHROMIUM_ENV}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed: run `pip install -e '.[dev]'`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"service exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"service not ready after 60 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def service(checkpoint_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``metarec serve`` on the tiny checkpoint as its own process, on a free port."""
    folder = tmp_path_factory.mktemp("page-service")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "metarec.cli",
        "serve",
        str(checkpoint_dir),
        "--port",
        str(port),
    ]
    command += ["--db-url", f"sqlite:///{folder / 'events.db'}"]
    env = {**os.environ, "METAREC_API_KEYS": API_KEY}
    log = folder / "service.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def page(browser: Any, service: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 1400})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(service + "/")
    yield opened
    context.close()


def api(service: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(service + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def history(service: str, user_id: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    return api(service, "GET", f"/v1/users/{quote(user_id, safe='')}/history")["events"]


def search(page: Any, query: str) -> None:
    page.get_by_label("Search by title or id").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()


def like_button(page: Any, item_id: str) -> Any:
    row = page.locator(f'#results li[data-item-id="{item_id}"]')
    return row.get_by_role("button", name=re.compile("^Like "))


def like_by_search(page: Any, item_id: str, query: str) -> None:
    search(page, query)
    like_button(page, item_id).click()
    page.locator(f'#liked li[data-item-id="{item_id}"]').wait_for()


def slate_ids(page: Any) -> list[str]:
    return page.locator("#slate li").evaluate_all("rows => rows.map(row => row.dataset.itemId)")


def wait_for_slate(page: Any, number: int) -> list[str]:
    from playwright.sync_api import expect

    expect(page.locator("#slate-status")).to_have_text(re.compile(rf"^Slate {number} "))
    return slate_ids(page)


def test_page_loads_only_local_files(browser: Any, service: str) -> None:
    context = browser.new_context()
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    response = opened.goto(service + "/")
    opened.wait_for_load_state("networkidle")
    assert response is not None
    assert response.status == 200
    assert opened.title() == "metarec: try the recommender"
    assert any(url.endswith("/static/app.js") for url in requested)
    assert any(url.endswith("/static/style.css") for url in requested)
    assert all(url.startswith(service + "/") for url in requested), requested
    assert opened.locator("#error").is_hidden()
    assert UUID.match(opened.locator("#user-id").inner_text().removeprefix("web-"))
    context.close()


def test_page_search_like_skip_click(page: Any, service: str) -> None:
    page.get_by_label("API key").fill(API_KEY)
    user_id = page.locator("#user-id").inner_text()
    for item_id, query in LIKED_ITEMS.items():
        like_by_search(page, item_id, query)

    liked = [event for event in history(service, user_id) if event["type"] == "rating"]
    assert [event["value"] for event in liked] == [5.0, 5.0, 5.0]
    liked_ids = {event["item_id"] for event in liked}
    assert liked_ids == set(LIKED_ITEMS)

    page.get_by_role("button", name="Recommend").click()
    first = wait_for_slate(page, 1)
    assert len(first) == 10
    assert not liked_ids & set(first)

    page.get_by_role("button", name="Skip this slate").click()
    second = wait_for_slate(page, 2)
    assert len(second) == 10
    assert not set(first) & set(second)
    skipped = {event["item_id"] for event in history(service, user_id) if event["type"] == "skip"}
    assert skipped == set(first)

    clicked = second[0]
    page.locator(f'#slate li[data-item-id="{clicked}"]').get_by_role(
        "button", name=re.compile("^Click ")
    ).click()
    third = wait_for_slate(page, 3)
    assert len(third) == 10
    assert not set(second) & set(third)
    assert not set(first) & set(third)
    events = history(service, user_id)
    assert [event["item_id"] for event in events if event["type"] == "click"] == [clicked]
    assert all(UUID.match(event["event_id"]) for event in events)
    assert len(events) == 3 + 10 + 10

    # The page shows exactly the slate the API returns for the same user and events.
    direct = api(service, "POST", "/v1/recommendations", {"user_id": user_id, "k": 10})
    assert [item["item_id"] for item in direct["items"]] == third
    assert page.locator("#error").is_hidden()


def test_page_shows_api_errors(page: Any) -> None:
    search(page, "Star Wars")
    like = like_button(page, "50")

    like.click()
    error = page.get_by_role("alert")
    error.wait_for()
    assert "401" in error.inner_text()
    assert "missing_api_key" in error.inner_text()

    page.get_by_label("API key").fill("wrong-key")
    like.click()
    page.get_by_role("alert").filter(has_text="invalid_api_key").wait_for()
    assert "403" in error.inner_text()
    assert page.locator("#liked li").count() == 0


def test_page_keeps_user_after_reload(page: Any, service: str) -> None:
    page.get_by_label("API key").fill(API_KEY)
    user_id = page.locator("#user-id").inner_text()
    like_by_search(page, "50", "Star Wars")

    page.reload()
    assert page.locator("#user-id").inner_text() == user_id
    assert page.get_by_label("API key").input_value() == API_KEY
    page.locator('#liked li[data-item-id="50"]').wait_for()

    page.get_by_role("button", name="New user").click()
    assert page.locator("#user-id").inner_text() != user_id
    assert page.locator("#liked li").count() == 0
