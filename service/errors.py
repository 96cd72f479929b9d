"""Problem details (RFC 9457): the one shape of every error response.

```json
{"type": "https://triage.invalid/problems/text-too-long", "title": "Text too long",
 "status": 413, "detail": "text has 25000 characters; the limit is 20000",
 "instance": "/v1/suggest", "request_id": "3f2a…", "errors": [...]}
```

``type`` ends in a stable slug clients can switch on; ``errors`` lists field problems
(``loc``, ``msg``, ``type``) for validation failures.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.logs import request_id_var
from service.schemas import PATTERN_MEANINGS

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://triage.invalid/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

_DEFAULT_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


class Problem(Exception):
    """Raise to answer with a problem-details response."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers


class BodyTooLarge(StarletteHTTPException):
    """A body that outgrew ``TRIAGE_MAX_BODY_BYTES`` while it was read (a chunked upload has no
    Content-Length to check first). An HTTPException, so that FastAPI's body parsing passes
    it on instead of turning it into a 400."""

    def __init__(self, size: str, limit: int) -> None:
        detail = f"{size}; the limit is {limit} (TRIAGE_MAX_BODY_BYTES)"
        super().__init__(413, detail=detail, headers={"connection": "close"})

    def problem(self, instance: str) -> dict[str, Any]:
        return problem_body(413, "body-too-large", "Body too large", str(self.detail), instance)


def internal_error_problem(instance: str) -> dict[str, Any]:
    """The body of a 500: what failed is in the log, under the request id, not in the answer."""
    return problem_body(
        500,
        "internal-error",
        "Internal error",
        "the service failed; the log has the details under this request_id",
        instance,
    )


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return problem_json(problem_body(status, slug, title, detail, instance, errors), headers)


def problem_json(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem body (``problem_body``) as the response, with its status and media type."""
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _clean(value: Any) -> Any:
    """Validation errors echo the input; keep them short and JSON-safe: a lone surrogate
    (which JSON's ``\\ud800`` can carry in but UTF-8 cannot carry out) is shown escaped, and
    ``NaN``, ``Infinity`` or a number too large for a float (``1e400``), which Python's JSON
    reader takes but JSON cannot write, are shown as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    if isinstance(value, str):
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value if len(value) <= 200 else value[:200] + "…"
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)[:200]


def _unreadable_body(cause: BaseException | None) -> str | None:
    """Why FastAPI could not parse a body ("There was an error parsing the body"), said for
    the client; None when the failure was not in reading JSON."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the body is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset "
            f"{cause.start}); JSON is sent as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return "the body is not readable JSON: its arrays or objects are nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):  # Python's int size limit
        return (
            "the body is not readable JSON: a number has more digits than the "
            f"{sys.get_int_max_str_digits()} allowed"
        )
    return None


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette's 405 names only the first
    route's, though GET and POST of one path are two routes). Asks each route whether it
    would take the call with another method: included routers answer that too."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message, but a pattern the field does not match is said in words."""
    if error.get("type") == "string_pattern_mismatch":
        meaning = PATTERN_MEANINGS.get(error.get("ctx", {}).get("pattern"))
        if meaning:
            return meaning
    return str(error.get("msg", ""))


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in raw)
        return problem_response(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body is not valid JSON ({detail})",
            request.url.path,
        )
    if any(tuple(e.get("loc", ())) == ("body",) and isinstance(e.get("input"), bytes) for e in raw):
        return problem_response(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with the header content-type: application/json",
            request.url.path,
        )
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": _message(e),
            "type": str(e.get("type", "")),
            **(
                {"input": _clean(e["input"])} if "input" in e and e.get("type") != "missing" else {}
            ),
        }
        for e in raw
    ]
    summary = "; ".join(f"{'.'.join(err['loc'])}: {err['msg']}" for err in errors[:5])
    return problem_response(
        422,
        "validation-error",
        "Invalid request",
        summary or "invalid request",
        request.url.path,
        errors,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error, including the framework's own 404/405 and validation, as problem details."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status, exc.slug, exc.title, exc.detail, request.url.path, exc.errors, exc.headers
        )

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return problem_json(exc.problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unreadable = _unreadable_body(exc.__cause__)  # FastAPI's "error parsing the body"
        if unreadable is not None:
            return problem_response(
                400, "malformed-json", "Malformed JSON", unreadable, request.url.path
            )
        slug = _DEFAULT_SLUGS.get(exc.status_code, "error")
        title = slug.replace("-", " ").capitalize()
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            exc.status_code, slug, title, detail, request.url.path, headers=headers or None
        )

    @app.exception_handler(OperationalError)
    async def _storage(request: Request, exc: OperationalError) -> JSONResponse:
        # The database cannot be used now (disk full, locked past the timeout, the server
        # gone): nothing was stored, and trying again later may work. The driver's first line
        # says why; the statement and its parameters (request texts) are left out.
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "unavailable"
        logger.error("storage unavailable on %s %s: %s", request.method, request.url.path, reason)
        return problem_response(
            503,
            "storage-unavailable",
            "Storage unavailable",
            f"the database cannot be used now ({reason}); nothing was stored, try again later",
            request.url.path,
            headers={"Retry-After": "30"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_json(internal_error_problem(request.url.path))
