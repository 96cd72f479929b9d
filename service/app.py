"""The FastAPI application: ``create_app(settings)`` builds it; its lifespan loads the model.

Run it with ``triage serve`` or ``uvicorn --factory service.app:create_app``. Configuration
comes from ``TRIAGE_*`` environment variables (see ``service.settings``); the API key, when
``TRIAGE_API_KEYS`` is unset, from the key file ``var/api-key``, created on first start
(see ``service.security``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from threadpoolctl import threadpool_limits

from model import Registry
from service.demand import DemandIndex, recount
from service.deps import AppState
from service.erasure import Erasures
from service.errors import (
    PROBLEM_MEDIA_TYPE,
    BodyTooLarge,
    install_error_handlers,
    internal_error_problem,
)
from service.fastpath import SuggestFastPath
from service.logs import configure_logging, request_id_var
from service.metrics import Metrics
from service.routes import router
from service.runtime import ModelHolder, SuggestBatcher
from service.security import resolve_api_keys
from service.settings import Settings
from service.store import Store
from service.webpage import mount_web

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

DESCRIPTION = """\
Suggests triage labels (`msp_configurable`, `security`, `broad_value`), an outcome and the
reasons for feature requests in German or English, keeps an inbox of requests with the
architects' reviews, and serves the registry's current model with hot reload.

Errors are RFC 9457 problem details (`application/problem+json`). Writes, inbox reads and
admin calls need the `X-API-Key` header.

**Blind review.** At intake a share of requests (`TRIAGE_BLIND_REVIEW_SHARE`) is chosen for
blind review (`blind_review: true`), so that agreement with the model can be measured without
anchoring. Until such a request has its first review, the inbox answers as if it had no
suggestion yet: `labels`, `outcome`, `suggested_labels`, `suggested_outcome`, `margin`,
`demand`, `suggestion` and the near-duplicate links are null; the `label` and `outcome`
filters never match it; sorted by `uncertainty` it comes after every request with a visible
margin, in id order. Once reviewed it shows everything, like any other request.
"""


class RequestContext:
    """Request id, body size limit, access log line and HTTP metrics, as plain ASGI.

    (Starlette's ``BaseHTTPMiddleware`` costs about a millisecond per request; this does not.)
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        answered = False
        received = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        async def counted() -> Message:
            """The body as it arrives, refused once it outgrows the limit (a chunked upload
            has no Content-Length to check beforehand)."""
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(f"the body passed {received} bytes", self.max_body_bytes)
            return message

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                raise BodyTooLarge(f"the body has {int(length)} bytes", self.max_body_bytes)
            await self.app(scope, counted, send_with_id)
        except BodyTooLarge as exc:  # here before the app, or from a body read outside FastAPI
            if answered:
                raise
            await _send_problem(send_with_id, exc.problem(scope["path"]), close=True)
        except Exception:
            # Answered here, inside the request's context, so the 500 carries its request id
            # (outside, the id is gone) and the error is logged once.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if answered:
                raise
            await _send_problem(send_with_id, internal_error_problem(scope["path"]))
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            state = getattr(scope.get("app"), "state", None)
            triage = getattr(state, "triage", None) if state is not None else None
            if triage is not None:
                triage.metrics.observe_http(scope["method"], path, status, elapsed)
            access_logger.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


async def _send_problem(send: Send, problem: dict[str, Any], close: bool = False) -> None:
    body = json.dumps(problem).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of an oversized body is not read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": problem["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _build_state(settings: Settings) -> AppState:
    api_keys = resolve_api_keys(settings)
    store = Store(settings.database_url)
    schema = store.migrate()
    logger.info(
        "database %s ready (schema %d)",
        store.engine.url.render_as_string(hide_password=True),
        schema,
    )
    assigned = store.assign_blind_reviews(settings.blind_review_share)
    if assigned:
        logger.info("chose blind review for %d requests stored before schema 2", assigned)
    recounted = store.recount_stale_demand(recount)
    if recounted:
        logger.info("counted again the demand of %d requests that counted erased ones", recounted)
    holder = ModelHolder(
        Registry(settings.model_dir), settings.uncertainty_band, settings.similar_across_languages
    )
    metrics = Metrics(
        version=lambda: holder.model.version if holder.model else None,
        agreement=store.agreement,
    )
    holder.result_hook = lambda result: metrics.reloads.labels(result).inc()
    if not holder.reload(force=True):
        logger.error("starting without a model: %s", holder.state.last_reload_error)
    erasures = Erasures(store)
    erasures.refresh()
    return AppState(
        settings=settings,
        store=store,
        holder=holder,
        batcher=SuggestBatcher(holder),
        demand=DemandIndex(
            store, erasures, settings.demand_similarity, settings.demand_min_partners
        ),
        erasures=erasures,
        metrics=metrics,
        api_keys=api_keys,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing is loaded until its lifespan starts."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread per worker process: each worker already has a core, and OpenBLAS's
        # own threads (one per core by default) spin beside the other workers and the event
        # loop. With them, the similar requests across languages (a small dense product per
        # batch) tripled the service's CPU per suggestion under load (0.9 -> 2.6-2.9 ms).
        threadpool_limits(1, user_api="blas")
        state = _build_state(settings)
        app.state.triage = state
        state.holder.start_watcher(settings.reload_interval)
        state.erasures.start_watcher(settings.reload_interval)
        try:
            yield
        finally:
            state.erasures.stop()
            state.holder.stop()
            state.batcher.close()
            state.store.close()
            if state.metrics.multiprocess:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())
            # The app is a web of cycles (routes, middleware), and the holder was one with
            # the metrics (its reload hook counts into them, they read its version): both are
            # freed only by a full garbage collection, which a process holding the model's
            # many objects seldom runs. Till then the model (~80 MB) stayed; tests make
            # hundreds of apps. Unlinked, the state goes as soon as the lifespan ends.
            state.holder.result_hook = None
            del app.state.triage

    app = FastAPI(
        title="Request Triage",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # "/v1/suggest/" is a 404 problem, not a redirect to an absolute URL of this host
        # (wrong behind a proxy, and a 307 with no body says nothing of the mistake).
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.include_router(router)
    mount_web(app, settings)
    app.add_middleware(SuggestFastPath)  # innermost of ours: inside CORS and RequestContext
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["content-type", "x-api-key", "x-request-id", "idempotency-key"],
            expose_headers=["x-request-id", "x-total-count", "link", "location"],
        )
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes)
    return app


def openapi_schema(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document, without starting the app."""
    return create_app(settings).openapi()
