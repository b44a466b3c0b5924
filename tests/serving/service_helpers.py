"""Small request helpers shared by the service tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

API_KEY = "test-key-7f3a"


def events(
    user_id: str, items: list[str], kind: str, prefix: str, value: float | None = None
) -> list[dict[str, Any]]:
    """Return event dicts of one type for a user, with ids ``{prefix}-{n}``."""
    return [
        {
            "event_id": f"{prefix}-{number}",
            "user_id": user_id,
            "item_id": item,
            "type": kind,
            "value": value,
        }
        for number, item in enumerate(items)
    ]


def post_events(client: TestClient, batch: list[dict[str, Any]]) -> dict[str, int]:
    response = client.post("/v1/events", json={"events": batch}, headers={"X-API-Key": API_KEY})
    assert response.status_code == 200, response.text
    return response.json()


def slate(client: TestClient, user_id: str, k: int = 10, **body: Any) -> list[str]:
    response = client.post("/v1/recommendations", json={"user_id": user_id, "k": k, **body})
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]
