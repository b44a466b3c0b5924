"""Request and response bodies of the v1 API."""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from metarec.serving.store import MAX_ID_LENGTH

# 9999-12-31T23:59:59Z, the last second that datetime can represent.
MAX_TIMESTAMP = 253_402_300_799.0
# Control characters (NUL, line breaks, escapes) and the Unicode line and paragraph
# separators would corrupt log lines and CSV exports of the ids.
FORBIDDEN_ID_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def control_character(text: str) -> str | None:
    """Return the first control character or line separator in ``text``, or None."""
    for character in text:
        if unicodedata.category(character) in FORBIDDEN_ID_CATEGORIES:
            return character
    return None


def _check_identifier(value: str) -> str:
    found = control_character(value)
    if found is not None:
        raise ValueError(f"ids must not contain control characters; found U+{ord(found):04X}")
    return value


Identifier = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, strict=True),
    AfterValidator(_check_identifier),
]
EventType = Literal["impression", "click", "purchase", "rating", "skip"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendationRequest(_Body):
    user_id: Identifier
    k: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    exclude: Annotated[list[Identifier], Field(max_length=10_000)] = []


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendationResponse(BaseModel):
    user_id: str
    items: list[ScoredItem]
    model_version: str
    request_id: str


class EventIn(_Body):
    event_id: Identifier
    user_id: Identifier
    item_id: Identifier
    type: EventType
    value: Annotated[float | None, Field(strict=True)] = None
    timestamp: Annotated[
        float | None,
        Field(description="ISO 8601 string (UTC without an offset) or epoch seconds."),
    ] = None

    @field_validator("value")
    @classmethod
    def _finite_value(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"value must be a finite number; got {value}")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _epoch_seconds(cls, value: Any) -> float | None:
        return parse_timestamp(value)

    @model_validator(mode="after")
    def _rating_has_value(self) -> EventIn:
        if self.type == "rating" and self.value is None:
            raise ValueError(f"event {self.event_id!r} is a rating and needs a numeric value")
        return self


class EventBatch(_Body):
    events: list[EventIn]


class EventsAccepted(BaseModel):
    accepted: int
    duplicates: int


class HistoryEvent(BaseModel):
    event_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: str | None
    received_at: str


class UserHistoryResponse(BaseModel):
    user_id: str
    events: list[HistoryEvent]


class UserDeleted(BaseModel):
    user_id: str
    deleted: int


class ItemTitle(BaseModel):
    item_id: str
    title: str


class ItemList(BaseModel):
    items: list[ItemTitle]


class ModelInfo(BaseModel):
    version: str
    dataset: str
    n_items: int
    checkpoint_path: str
    loaded_at: str


class ReloadRequest(_Body):
    run_dir: Annotated[str, Field(min_length=1, strict=True)] | None = None


class Status(BaseModel):
    status: str


def parse_timestamp(value: Any) -> float | None:
    """Return epoch seconds from an ISO 8601 string or a number; raise ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("timestamp must be an ISO 8601 string or epoch seconds")
    seconds = _iso_seconds(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_TIMESTAMP:
        raise ValueError(
            f"timestamp must lie between 1970 and 9999 (epoch seconds 0 to "
            f"{MAX_TIMESTAMP:.0f}); got {value!r}"
        )
    return seconds


def _iso_seconds(value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"timestamp {value!r} is not ISO 8601; use e.g. 2026-12-04T18:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_timestamp(seconds: float | None) -> str | None:
    """Return epoch seconds as an ISO 8601 UTC string ending in ``Z``."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
