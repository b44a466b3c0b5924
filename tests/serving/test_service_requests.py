"""Request edge cases: body encodings and types, ids, messages, metrics, logs, search, docs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events

KEY = {"X-API-Key": API_KEY}
JSON_HEADERS = {**KEY, "Content-Type": "application/json"}


def test_non_utf8_body_is_invalid_json(client: TestClient) -> None:
    body = '{"user_id": "caf\u00e9"}'.encode("latin-1")
    response = client.post(
        "/v1/recommendations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert "UTF-8" in response.json()["error"]["message"]


def test_non_json_content_type_rejected(client: TestClient) -> None:
    body = json.dumps({"events": events("typed", ["50"], "click", "t")})
    response = client.post(
        "/v1/events", content=body, headers={**KEY, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "text/plain" in error["message"]
    assert "application/json" in error["message"]
    assert client.get("/v1/users/typed/history").json()["events"] == []
    charset = client.post(
        "/v1/recommendations",
        content=json.dumps({"user_id": "u"}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_messages_drop_value_error_prefix(client: TestClient) -> None:
    rating = events("r", ["50"], "rating", "no-value")
    response = client.post("/v1/events", json={"events": rating}, headers=KEY)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "Value error" not in message
    assert message == "events.0: event 'no-value-0' is a rating and needs a numeric value"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "a\x00b"}, "user_id"),
        ({"user_id": "a\nb"}, "user_id"),
        ({"user_id": "u", "exclude": ["5\x1b0"]}, "exclude.0"),
    ],
)
def test_control_characters_in_ids(client: TestClient, body: dict[str, object], field: str) -> None:
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field
    assert "control characters" in error["message"]


def test_control_characters_in_events(client: TestClient) -> None:
    for key in ("event_id", "user_id", "item_id"):
        event = {**events("ctl", ["50"], "click", "ctl")[0], key: "x\u2028y"}
        response = client.post("/v1/events", json={"events": [event]}, headers=KEY)
        assert response.status_code == 422, key
        assert response.json()["error"]["field"] == f"events.0.{key}"
    history = client.get("/v1/users/a%00b/history")
    assert history.status_code == 422
    assert history.json()["error"]["field"] == "user_id"
    assert client.delete("/v1/users/a%00b", headers=KEY).status_code == 422


def test_reload_of_file_says_file(
    client: TestClient, checkpoint_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = checkpoint_dir / "model.safetensors"
    with caplog.at_level(logging.WARNING, logger="metarec"):
        response = client.post(
            "/v1/model/reload",
            json={"run_dir": str(weights)},
            headers={**KEY, "X-Request-ID": "reload-file-1"},
        )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "is a file, not a run folder" in message
    assert "folder not found" not in message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "reload-file-1" in warnings[0]
    assert "is a file, not a run folder" in warnings[0]


def test_oversize_body_counted_under_route(client: TestClient) -> None:
    body = json.dumps({"events": [], "padding": "x" * (1 << 20)}).encode()
    assert client.post("/v1/events", content=body, headers=JSON_HEADERS).status_code == 413
    metrics = client.get("/metrics").text
    counted = 'metarec_http_requests_total{method="POST",route="/v1/events",status="413"} 1.0'
    assert counted in metrics
    assert 'route="unmatched",status="413"' not in metrics


def test_access_log_keeps_raw_path(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="metarec"):
        client.get("/v1/users/a%0Aforged%20line/history")
    lines = [r.getMessage() for r in caplog.records if "/history" in r.getMessage()]
    assert len(lines) == 1
    assert "/v1/users/a%0Aforged%20line/history" in lines[0]
    assert "\n" not in lines[0]


def test_item_search_ranks_star_wars_first(client: TestClient) -> None:
    found = client.get("/v1/items", params={"q": "star", "limit": 100}).json()["items"]
    titles = [item["title"] for item in found]
    assert found[0] == {"item_id": "50", "title": "Star Wars"}
    whole_word = [i for i, title in enumerate(titles) if re.match(r"(?i)star\b", title)]
    other = [i for i, title in enumerate(titles) if not re.match(r"(?i)star\b", title)]
    assert whole_word
    assert max(whole_word) < min(other)
    assert "Stargate" in titles
    prefix = [i for i, title in enumerate(titles) if title.casefold().startswith("star")]
    assert max(prefix) < min(i for i in range(len(titles)) if i not in prefix)
    exact = client.get("/v1/items", params={"q": "1"}).json()["items"]
    assert exact[0]["item_id"] == "1"


def test_docs_page_works_offline(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<code>/v1/recommendations</code>" in page
    assert "<code>/v1/events</code>" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "cdn" not in page.casefold()
    assert client.get("/openapi.json").json()["paths"]["/v1/items"]
    assert client.get("/redoc").status_code == 404
