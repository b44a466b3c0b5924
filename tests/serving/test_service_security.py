"""Keys, bad input and error bodies of the v1 API."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events, slate

from metarec.errors import ConfigError
from metarec.serving.app import create_app
from metarec.serving.settings import ServiceSettings, key_matches, load_api_keys

KEY = {"X-API-Key": API_KEY}
ONE_EVENT = {"events": events("u", ["50"], "click", "one")}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return response.json()["error"]


def test_missing_key_rejected(client: TestClient) -> None:
    error = error_of(client.post("/v1/events", json=ONE_EVENT), 401)
    assert error["code"] == "missing_api_key"
    assert error["field"] == "X-API-Key"
    error_of(client.delete("/v1/users/u"), 401)
    error_of(client.post("/v1/model/reload", json={"run_dir": None}), 401)
    assert client.get("/v1/users/u/history").json()["events"] == []


def test_wrong_key_rejected(client: TestClient) -> None:
    for wrong in ("nope", API_KEY + "x", API_KEY[:-1], API_KEY.upper()):
        response = client.post("/v1/events", json=ONE_EVENT, headers={"X-API-Key": wrong})
        assert error_of(response, 403)["code"] == "invalid_api_key"
    assert client.get("/v1/users/u/history").json()["events"] == []


def test_second_key_accepted(make_settings: Callable[..., ServiceSettings]) -> None:
    with TestClient(create_app(make_settings(api_keys=("first-key", "second-key")))) as client:
        response = client.post("/v1/events", json=ONE_EVENT, headers={"X-API-Key": "second-key"})
    assert response.json() == {"accepted": 1, "duplicates": 0}


def test_malformed_json(client: TestClient) -> None:
    for body in (b"{not json", b'{"user_id": "u",}', b""):
        response = client.post(
            "/v1/recommendations", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), body
        assert "Traceback" not in response.text
    response = client.post(
        "/v1/events", content=b"{oops", headers={**KEY, "Content-Type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "invalid_json"


def test_unknown_item_rejected(client: TestClient) -> None:
    error = error_of(
        client.post("/v1/recommendations", json={"user_id": "u", "exclude": ["50", "no-item"]}),
        422,
    )
    assert error["code"] == "unknown_item"
    assert error["field"] == "exclude.1"
    assert "'no-item'" in error["message"]
    batch = events("u", ["50", "nope-9"], "click", "bad")
    error = error_of(client.post("/v1/events", json={"events": batch}, headers=KEY), 422)
    assert error["field"] == "events.1.item_id"
    assert "'nope-9'" in error["message"]
    assert client.get("/v1/users/u/history").json()["events"] == []


@pytest.mark.parametrize("k", [-1, 0, 101])
def test_slate_size_out_of_range(client: TestClient, k: int) -> None:
    error = error_of(client.post("/v1/recommendations", json={"user_id": "u", "k": k}), 422)
    assert error["code"] == "invalid_value"
    assert error["field"] == "k"


def test_oversize_batch(client: TestClient) -> None:
    batch = [
        {**event, "event_id": f"big-{n}"} for n, event in enumerate(ONE_EVENT["events"] * 1001)
    ]
    error = error_of(client.post("/v1/events", json={"events": batch}, headers=KEY), 413)
    assert error["code"] == "batch_too_large"
    assert error["field"] == "events"
    assert "1001" in error["message"]
    assert client.get("/v1/users/u/history").json()["events"] == []


def test_oversize_body(client: TestClient) -> None:
    body = json.dumps({"events": [], "padding": "x" * (1 << 20)}).encode()
    response = client.post(
        "/v1/events", content=body, headers={**KEY, "Content-Type": "application/json"}
    )
    assert error_of(response, 413)["code"] == "body_too_large"

    def chunks():
        for _ in range(20):
            yield b" " * 65_536

    streamed = client.post(
        "/v1/events", content=chunks(), headers={**KEY, "Content-Type": "application/json"}
    )
    assert error_of(streamed, 413)["code"] == "body_too_large"


def test_unicode_ids(client: TestClient) -> None:
    user = "\u30e6\u30fc\u30b6\u30fc-\u00df-\U0001f600"
    batch = [{"event_id": "\u00e9-\u4e8b\u4ef6", "user_id": user, "item_id": "50", "type": "skip"}]
    assert post_events(client, batch) == {"accepted": 1, "duplicates": 0}
    history = client.get(f"/v1/users/{user}/history").json()
    assert history["user_id"] == user
    assert history["events"][0]["event_id"] == "\u00e9-\u4e8b\u4ef6"
    assert "50" not in slate(client, user, k=100)
    error = error_of(
        client.post("/v1/recommendations", json={"user_id": "u", "exclude": ["\u2603"]}), 422
    )
    assert "'\u2603'" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 42}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u" * 257}, "user_id"),
        ({"user_id": "u", "k": "10"}, "k"),
        ({"user_id": "u", "k": 2.5}, "k"),
        ({"user_id": "u", "exclude": "50"}, "exclude"),
        ({"user_id": "u", "exclude": [50]}, "exclude.0"),
        ({"user_id": "u", "extra": 1}, "extra"),
        ({}, "user_id"),
    ],
)
def test_recommendation_wrong_types(client: TestClient, body: dict[str, Any], field: str) -> None:
    error = error_of(client.post("/v1/recommendations", json=body), 422)
    assert error["code"] == "invalid_value"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "view"}, "events.0.type"),
        ({"item_id": 50}, "events.0.item_id"),
        ({"value": "high"}, "events.0.value"),
        ({"value": True}, "events.0.value"),
        ({"type": "rating", "value": None}, "events.0"),
        ({"timestamp": "yesterday"}, "events.0.timestamp"),
        ({"timestamp": -5}, "events.0.timestamp"),
        ({"timestamp": 1e20}, "events.0.timestamp"),
        ({"timestamp": True}, "events.0.timestamp"),
        ({"event_id": ""}, "events.0.event_id"),
    ],
)
def test_event_wrong_types(client: TestClient, change: dict[str, Any], field: str) -> None:
    event = {"event_id": "t", "user_id": "u", "item_id": "50", "type": "click", **change}
    response = client.post("/v1/events", json={"events": [event]}, headers=KEY)
    error = error_of(response, 422)
    assert error["field"] == field
    assert client.get("/v1/users/u/history").json()["events"] == []


def test_events_body_must_be_object(client: TestClient) -> None:
    for body in ([], {"events": {}}, {"events": [1]}, "text"):
        response = client.post("/v1/events", json=body, headers=KEY)
        assert response.status_code == 422, body


def test_unknown_route_and_method(client: TestClient) -> None:
    assert error_of(client.get("/v2/recommendations"), 404)["code"] == "not_found"
    assert error_of(client.get("/v1/recommendations"), 405)["code"] == "method_not_allowed"


def test_logs_never_carry_keys(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="metarec"):
        post_events(client, events("logged", ["50"], "click", "log"))
        client.post("/v1/events", json=ONE_EVENT, headers={"X-API-Key": "wrong-secret-1"})
    assert caplog.records
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert API_KEY not in text
    assert "wrong-secret-1" not in text
    assert "request " in text


def test_settings_need_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no API key configured"):
        ServiceSettings(tmp_path, "sqlite://", ())
    with pytest.raises(ConfigError, match="API key 2 is empty or has characters"):
        ServiceSettings(tmp_path, "sqlite://", ("ok-key", "caf\u00e9"))
    monkeypatch.setenv("METAREC_API_KEYS", " a1 , ,b2 ")
    assert load_api_keys(None) == ("a1", "b2")
    key_file = tmp_path / "keys"
    key_file.write_text("# service keys\nfile-key-1\n\nfile-key-2  # second\n")
    assert load_api_keys(key_file) == ("file-key-1", "file-key-2")
    with pytest.raises(ConfigError, match="not found"):
        load_api_keys(tmp_path / "missing")


def test_key_matches_compares_exactly() -> None:
    keys = ("alpha-key", "beta-key")
    assert key_matches("beta-key", keys)
    assert not key_matches("beta-ke", keys)
    assert not key_matches("", keys)
    assert not key_matches("alpha-key ", keys)


def test_serve_without_key_exits(checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from metarec.cli import app as cli

    monkeypatch.delenv("METAREC_API_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(checkpoint_dir), "--port", "1"])
    assert result.exit_code == 2
    assert "no API key configured" in result.output
