"""The FastAPI application: routes of the v1 API, health, metrics and the page."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError

from metarec import __version__
from metarec.errors import MetarecError
from metarec.serving.docs_page import render_docs_page
from metarec.serving.errors import ApiError, install_error_handlers
from metarec.serving.middleware import ServiceMiddleware, request_id_var
from metarec.serving.models import ModelSnapshot
from metarec.serving.schemas import (
    EventBatch,
    EventsAccepted,
    HistoryEvent,
    ItemList,
    ItemTitle,
    ModelInfo,
    RecommendationRequest,
    RecommendationResponse,
    ReloadRequest,
    ScoredItem,
    Status,
    UserDeleted,
    UserHistoryResponse,
    control_character,
    format_timestamp,
)
from metarec.serving.search import search_items
from metarec.serving.service import Service
from metarec.serving.settings import ServiceSettings, key_matches
from metarec.serving.sqlite_files import StoreUnavailableError
from metarec.serving.store import EventIdConflict, StoredEvent

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")
STATIC_DIR = Path(__file__).parent / "static"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def create_app(settings: ServiceSettings) -> FastAPI:
    """Load the model and the store named in ``settings`` and return the app."""
    service = Service.start(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.batcher.close()
        service.store.close()
        logger.info("service stopped")

    app = FastAPI(
        title="metarec",
        version=__version__,
        description="Slates from a meta-RL agent that adapts to each click and skip.",
        lifespan=lifespan,
        # FastAPI's Swagger UI and ReDoc pages load scripts from a CDN; /docs is served below.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(
        ServiceMiddleware,
        metrics=service.metrics,
        max_body_bytes=settings.max_body_bytes,
    )
    app.include_router(_read_routes(service))
    app.include_router(_write_routes(service))
    app.include_router(_operations_routes(service))
    _add_docs_route(app)
    if (STATIC_DIR / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _require_key(service: Service) -> Any:
    # Async, because FastAPI runs a sync dependency on its thread pool, a thread hop per call.
    async def check(key: Annotated[str | None, Depends(api_key_header)]) -> None:
        if not key:
            message = "this call needs an X-API-Key header"
            raise ApiError(401, "missing_api_key", message, "X-API-Key")
        if not key_matches(key, service.settings.api_keys):
            raise ApiError(403, "invalid_api_key", "the X-API-Key is not valid", "X-API-Key")

    return Depends(check)


async def _require_json(request: Request) -> None:
    """Reject a POST body sent with a content type other than JSON (415).

    It is async, so FastAPI runs it on the event loop instead of its thread pool.
    """
    content_type = request.headers.get("content-type")
    if content_type is None or request.method != "POST":
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {content_type!r} is not JSON; send the body as application/json",
        "Content-Type",
    )


def _read_routes(service: Service) -> APIRouter:
    """Return the v1 routes that need no key: slates, history, items and the model."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(_require_json)])

    @router.post("/recommendations", response_model=RecommendationResponse)
    async def recommend(body: RecommendationRequest) -> RecommendationResponse:
        snapshot = service.models.current
        exclude = _item_indices(snapshot, body.exclude, "exclude")
        # The session is read on arrival, so it contains every event acknowledged before.
        session = service.sessions.session(body.user_id, snapshot.item_index)
        ranked = await service.batcher.rank(snapshot, session, body.k, exclude)
        item_ids = snapshot.checkpoint.item_ids
        return RecommendationResponse(
            user_id=body.user_id,
            items=[ScoredItem(item_id=item_ids[i], score=round(s, 6)) for i, s in ranked],
            model_version=snapshot.version,
            request_id=request_id_var.get(),
        )

    @router.get("/users/{user_id:path}/history", response_model=UserHistoryResponse)
    def user_history(user_id: str) -> UserHistoryResponse:
        _check_path_id(user_id)
        stored = _with_store(lambda: service.store.user_events(user_id))
        return UserHistoryResponse(user_id=user_id, events=[_history_event(e) for e in stored])

    @router.get("/items", response_model=ItemList)
    def items(
        q: Annotated[str, Query(max_length=256, description="Text in the title, or an id.")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> ItemList:
        found = search_items(service.models.current, q, limit)
        return ItemList(items=[ItemTitle(item_id=i, title=t) for i, t in found])

    @router.get("/model", response_model=ModelInfo)
    def model() -> ModelInfo:
        return _model_info(service.models.current)

    return router


def _write_routes(service: Service) -> APIRouter:
    """Return the v1 routes that need an API key: events, user erasure and model reload."""
    router = APIRouter(prefix="/v1", dependencies=[_require_key(service), Depends(_require_json)])

    @router.post("/events", response_model=EventsAccepted)
    def post_events(body: EventBatch) -> EventsAccepted:
        events = _checked_events(service, body)
        try:
            result = _with_store(lambda: service.commit(events))
        except EventIdConflict as conflict:
            field = f"events.{conflict.position}.event_id"
            raise ApiError(409, "event_id_conflict", str(conflict), field) from None
        return EventsAccepted(accepted=len(result.inserted), duplicates=result.duplicates)

    @router.delete("/users/{user_id:path}", response_model=UserDeleted)
    def delete_user(user_id: str) -> UserDeleted:
        _check_path_id(user_id)
        deleted = _with_store(lambda: service.erase_user(user_id))
        return UserDeleted(user_id=user_id, deleted=deleted)

    @router.post("/model/reload", response_model=ModelInfo)
    def reload(body: ReloadRequest | None = None) -> ModelInfo:
        run_dir = None if body is None else body.run_dir
        try:
            snapshot = service.reload(run_dir)
        except MetarecError as error:
            logger.warning(
                "request %s: reload of %s failed: %s; model %s stays",
                request_id_var.get(),
                run_dir or service.models.current.run_dir,
                error,
                service.models.current.version,
            )
            raise ApiError(422, "invalid_checkpoint", str(error), "run_dir") from None
        return _model_info(snapshot)

    return router


def _checked_events(service: Service, body: EventBatch) -> list[StoredEvent]:
    """Return the batch as events to store, or raise 413 or 422 for the first problem."""
    limit = service.settings.max_batch_events
    if len(body.events) > limit:
        raise ApiError(
            413,
            "batch_too_large",
            f"{len(body.events)} events in one request; send at most {limit} per request",
            "events",
        )
    known = service.models.current.item_index
    for position, event in enumerate(body.events):
        if event.item_id not in known:
            raise ApiError(
                422,
                "unknown_item",
                f"unknown item id {event.item_id!r}: the model was not trained on it",
                f"events.{position}.item_id",
            )
    received_at = time.time()
    return [
        StoredEvent(e.event_id, e.user_id, e.item_id, e.type, e.value, e.timestamp, received_at)
        for e in body.events
    ]


def _operations_routes(service: Service) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_model=Status)
    def healthz() -> Status:
        return Status(status="ok")

    @router.get("/readyz", response_model=Status)
    def readyz() -> Response:
        try:
            service.store.check_file()
        except StoreUnavailableError as error:
            return JSONResponse(
                {"error": {"code": "store_unavailable", "message": str(error), "field": None}},
                status_code=503,
            )
        if service.store.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"error": {"code": "not_ready", "message": "event store unreachable", "field": None}},
            status_code=503,
        )

    @router.get("/metrics")
    def metrics() -> Response:
        service.metrics.users_in_memory.set(len(service.sessions))
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @router.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return JSONResponse({"docs": str(request.url_for("docs_page"))})
        return FileResponse(index, media_type="text/html")

    return router


def _add_docs_route(app: FastAPI) -> None:
    @app.get("/docs", include_in_schema=False, name="docs_page")
    def docs_page() -> HTMLResponse:
        return HTMLResponse(render_docs_page(app.openapi()))


def _check_path_id(user_id: str) -> None:
    found = control_character(user_id)
    if found is not None:
        message = f"user_id: ids must not contain control characters; found U+{ord(found):04X}"
        raise ApiError(422, "invalid_value", message, "user_id")


def _item_indices(snapshot: ModelSnapshot, item_ids: list[str], field: str) -> np.ndarray:
    index = snapshot.item_index
    indices = []
    for position, item_id in enumerate(item_ids):
        found = index.get(item_id)
        if found is None:
            raise ApiError(
                422,
                "unknown_item",
                f"unknown item id {item_id!r}: the model was not trained on it",
                f"{field}.{position}",
            )
        indices.append(found)
    return np.array(indices, dtype=np.int64)


def _with_store(action: Callable[[], ResultT]) -> ResultT:
    """Run a store call; a database failure becomes a 503 that the client may retry."""
    try:
        return action()
    except StoreUnavailableError as error:
        logger.error("request %s: event store unavailable: %s", request_id_var.get(), error)
        raise ApiError(503, "store_unavailable", str(error)) from None
    except SQLAlchemyError as error:
        logger.error("request %s: event store failed: %s", request_id_var.get(), error)
        raise ApiError(
            503, "store_unavailable", "the event store is unavailable; retry later"
        ) from None


def _history_event(stored: StoredEvent) -> HistoryEvent:
    return HistoryEvent(
        event_id=stored.event_id,
        item_id=stored.item_id,
        type=stored.type,
        value=stored.value,
        timestamp=format_timestamp(stored.timestamp),
        received_at=format_timestamp(stored.received_at) or "",
    )


def _model_info(snapshot: ModelSnapshot) -> ModelInfo:
    return ModelInfo(
        version=snapshot.version,
        dataset=snapshot.dataset,
        n_items=len(snapshot.checkpoint.item_ids),
        checkpoint_path=str(snapshot.run_dir),
        loaded_at=format_timestamp(snapshot.loaded_at) or "",
    )
