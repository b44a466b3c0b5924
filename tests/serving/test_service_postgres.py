"""The service on PostgreSQL: writes, reads and the rebuild of sessions on start."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events, slate
from sqlalchemy import text

from metarec.serving.app import create_app
from metarec.serving.settings import ServiceSettings
from metarec.serving.store import EventStore


def clear(url: str) -> None:
    store = EventStore(url)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events"))
    store.close()


def test_postgres_service_restart_rebuilds_sessions(
    make_settings: Callable[..., ServiceSettings], postgres_url: str
) -> None:
    clear(postgres_url)
    settings = make_settings(db_url=postgres_url)
    user = "pg-\u00fcser"
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        first = slate(client, user)
        batch = events(user, first, "impression", "pg-i") + events(user, first[:2], "click", "pg-c")
        assert post_events(client, batch) == {"accepted": 12, "duplicates": 0}
        assert post_events(client, batch[:3]) == {"accepted": 0, "duplicates": 3}
        second = slate(client, user)
        history = client.get(f"/v1/users/{user}/history").json()["events"]
    assert not set(first) & set(second)
    assert [event["event_id"] for event in history] == [event["event_id"] for event in batch]

    with TestClient(create_app(settings)) as restarted:
        assert slate(restarted, user) == second
        response = restarted.delete(f"/v1/users/{user}", headers={"X-API-Key": API_KEY})
        assert response.json() == {"user_id": user, "deleted": 12}
        assert slate(restarted, user) == first
