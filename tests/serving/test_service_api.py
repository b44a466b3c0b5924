"""The v1 API over a real tiny checkpoint and a SQLite store, driven by FastAPI's TestClient."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events, slate

from metarec.checkpoint import load_checkpoint
from metarec.serving.models import weights_version
from metarec.session import Session

KEY = {"X-API-Key": API_KEY}


def test_recommend_cold_start(client: TestClient, checkpoint_dir: Path) -> None:
    response = client.post("/v1/recommendations", json={"user_id": "new-user"})
    body = response.json()
    assert response.status_code == 200
    assert body["user_id"] == "new-user"
    assert len(body["items"]) == 10
    assert len({item["item_id"] for item in body["items"]}) == 10
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model_version"] == weights_version(checkpoint_dir)
    assert body["request_id"] == response.headers["x-request-id"]


def test_recommend_matches_offline_agent(client: TestClient, checkpoint_dir: Path) -> None:
    checkpoint = load_checkpoint(checkpoint_dir)
    index = checkpoint.item_index
    liked, shown, clicked = ["50", "172", "181"], ["1", "7", "100", "121", "258"], {"7", "258"}
    batch = events("alice", liked, "rating", "r", value=5.0)
    batch += events("alice", shown, "impression", "i")
    batch += events("alice", sorted(clicked), "click", "c")
    post_events(client, batch)

    session = Session.from_history(np.array([index[i] for i in liked])).with_slate(
        np.array([index[i] for i in shown]), np.array([i in clicked for i in shown])
    )
    offline = checkpoint.agent.recommend([session], 20)[0]
    offline_scores = checkpoint.agent.score([session])[0, offline]
    response = client.post("/v1/recommendations", json={"user_id": "alice", "k": 20})
    served = response.json()["items"]
    assert [item["item_id"] for item in served] == [checkpoint.item_ids[i] for i in offline]
    assert np.allclose([item["score"] for item in served], offline_scores, atol=1e-5)


def test_skipped_slates_never_return(client: TestClient) -> None:
    seen: set[str] = set()
    for round_number in range(6):
        shown = slate(client, "skipper")
        assert len(shown) == 10
        assert not seen & set(shown), f"round {round_number} repeats {seen & set(shown)}"
        seen |= set(shown)
        post_events(client, events("skipper", shown, "skip", f"s{round_number}"))
    assert len(seen) == 60


def test_exclude_removes_items(client: TestClient) -> None:
    first = slate(client, "u-exclude", k=5)
    second = slate(client, "u-exclude", k=5, exclude=first[:3])
    assert not set(first[:3]) & set(second)
    assert second[:2] == first[3:5]


def test_duplicate_events_stored_once(client: TestClient) -> None:
    batch = events("dup", ["1", "2"], "click", "d")
    assert post_events(client, batch) == {"accepted": 2, "duplicates": 0}
    assert post_events(client, batch + batch) == {"accepted": 0, "duplicates": 4}
    history = client.get("/v1/users/dup/history").json()["events"]
    assert [event["event_id"] for event in history] == ["d-0", "d-1"]


def test_history_in_commit_order(client: TestClient) -> None:
    batch = [
        {"event_id": "h1", "user_id": "hist", "item_id": "9", "type": "impression"},
        {
            "event_id": "h2",
            "user_id": "hist",
            "item_id": "9",
            "type": "click",
            "timestamp": "2026-12-04T18:00:00",
        },
        {
            "event_id": "h3",
            "user_id": "hist",
            "item_id": "3",
            "type": "rating",
            "value": 4,
            "timestamp": 1_700_000_000,
        },
    ]
    post_events(client, batch)
    body = client.get("/v1/users/hist/history").json()
    assert body["user_id"] == "hist"
    assert [event["event_id"] for event in body["events"]] == ["h1", "h2", "h3"]
    assert body["events"][0]["timestamp"] is None
    assert body["events"][1]["timestamp"] == "2026-12-04T18:00:00Z"
    assert body["events"][2]["timestamp"] == "2023-11-14T22:13:20Z"
    assert body["events"][2]["value"] == 4.0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", body["events"][0]["received_at"])


def test_delete_user_erases_state(client: TestClient) -> None:
    cold = slate(client, "gone")
    post_events(client, events("gone", cold, "skip", "g"))
    assert slate(client, "gone") != cold
    response = client.delete("/v1/users/gone", headers=KEY)
    assert response.status_code == 200
    assert response.json() == {"user_id": "gone", "deleted": 10}
    assert client.get("/v1/users/gone/history").json()["events"] == []
    assert slate(client, "gone") == cold


def test_user_id_with_slash_and_unicode(client: TestClient) -> None:
    user = "team/\u00e9quipe \U0001f3ac"
    post_events(client, events(user, ["50"], "click", "slash"))
    encoded = "team%2F%C3%A9quipe%20%F0%9F%8E%AC"
    body = client.get(f"/v1/users/{encoded}/history").json()
    assert body["user_id"] == user
    assert [event["item_id"] for event in body["events"]] == ["50"]
    assert "50" not in slate(client, user, k=100)


def test_items_search(client: TestClient, checkpoint_dir: Path) -> None:
    found = client.get("/v1/items", params={"q": "star wars"}).json()["items"]
    assert found[0] == {"item_id": "50", "title": "Star Wars"}
    by_id = client.get("/v1/items", params={"q": "172"}).json()["items"]
    assert by_id == [{"item_id": "172", "title": "Empire Strikes Back, The"}]
    limited = client.get("/v1/items", params={"q": "the", "limit": 3}).json()["items"]
    assert len(limited) == 3
    assert all("the" in item["title"].casefold() for item in limited)
    listed = client.get("/v1/items", params={"limit": 5}).json()["items"]
    catalog = load_checkpoint(checkpoint_dir).item_ids
    assert [item["item_id"] for item in listed] == list(catalog[:5])
    assert client.get("/v1/items", params={"q": "no such title at all"}).json() == {"items": []}


def test_model_info(client: TestClient, checkpoint_dir: Path) -> None:
    body = client.get("/v1/model").json()
    assert body["version"] == weights_version(checkpoint_dir)
    assert body["dataset"] == "ml-100k"
    assert body["n_items"] == 1682
    assert body["checkpoint_path"] == str(checkpoint_dir.resolve())
    assert body["loaded_at"].endswith("Z")


def test_reload_same_folder(client: TestClient) -> None:
    before = client.get("/v1/model").json()
    response = client.post("/v1/model/reload", json={"run_dir": None}, headers=KEY)
    assert response.status_code == 200
    assert response.json()["version"] == before["version"]
    assert response.json()["loaded_at"] >= before["loaded_at"]


def test_reload_bad_folder_keeps_model(client: TestClient, tmp_path: Path) -> None:
    before = client.get("/v1/model").json()
    response = client.post("/v1/model/reload", json={"run_dir": str(tmp_path)}, headers=KEY)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_checkpoint"
    assert error["field"] == "run_dir"
    assert "model.json" in error["message"]
    assert client.get("/v1/model").json() == before


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_metrics_count_routes_and_events(client: TestClient, checkpoint_dir: Path) -> None:
    slate(client, "metrics-user")
    post_events(client, events("metrics-user", ["1", "2", "3"], "skip", "m"))
    post_events(client, events("metrics-user", ["1"], "skip", "m"))
    text = client.get("/metrics").text
    version = weights_version(checkpoint_dir)
    assert (
        'metarec_http_requests_total{method="POST",route="/v1/recommendations",status="200"} 1.0'
        in text
    )
    assert 'metarec_http_requests_total{method="POST",route="/v1/events",status="200"} 2.0' in text
    assert "metarec_events_stored_total 3.0" in text
    assert f'metarec_model_info{{dataset="ml-100k",version="{version}"}} 1.0' in text
    assert "metarec_users_in_memory 1.0" in text
    assert (
        'metarec_http_request_duration_seconds_count{method="POST",route="/v1/events"} 2.0' in text
    )


def test_request_id_echoed_or_generated(client: TestClient) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    fresh = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])


def test_openapi_lists_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/recommendations", "/v1/events", "/v1/items", "/v1/model/reload"):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_page_served_at_root(client: TestClient) -> None:
    from metarec.serving.app import STATIC_DIR

    if not (STATIC_DIR / "index.html").is_file():
        pytest.skip("the page is not in this checkout")
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert client.get("/static/app.js").status_code == 200


def test_store_down_not_ready_no_ack(client: TestClient) -> None:
    from sqlalchemy import create_engine

    service = client.app.state.service  # type: ignore[attr-defined]
    working = service.store.engine
    # Nothing listens on port 1 of the loopback address, so every connection fails.
    service.store.engine = create_engine("postgresql+psycopg://user@127.0.0.1:1/none")
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
        response = client.post(
            "/v1/events", json={"events": events("down", ["50"], "click", "d")}, headers=KEY
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert "50" in slate(client, "down", k=100)
    finally:
        service.store.engine.dispose()
        service.store.engine = working
    assert client.get("/readyz").status_code == 200


def test_titles_from_model_json(checkpoint_dir: Path, tmp_path: Path) -> None:
    from metarec.checkpoint import save_derived_checkpoint
    from metarec.serving.app import create_app
    from metarec.serving.settings import ServiceSettings

    base = load_checkpoint(checkpoint_dir)
    titled = tmp_path / "titled"
    save_derived_checkpoint(titled, base.agent, base, {"item_titles": {"50": "Star Wars (1977)"}})
    settings = ServiceSettings(titled, f"sqlite:///{tmp_path / 'titles.db'}", (API_KEY,))
    with TestClient(create_app(settings)) as titled_client:
        found = titled_client.get("/v1/items", params={"q": "1977"}).json()["items"]
        unnamed = titled_client.get("/v1/items", params={"q": "181"}).json()["items"]
    assert found == [{"item_id": "50", "title": "Star Wars (1977)"}]
    assert unnamed == [{"item_id": "181", "title": ""}]
