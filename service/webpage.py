"""The reviewers' web page: static files at ``/`` and ``/web/``, plus the model's report pictures.

``mount_web(app, settings)`` adds, next to the JSON API:

- ``GET /``: the page (``service/web/index.html``), with a strict Content-Security-Policy;
- ``GET /web/...``: its static files (scripts, styles), no build step;
- ``GET /v1/web/config``: the few settings the page needs (blind-review share, key header);
- ``GET /v1/model/report``: which report pictures the serving model version has;
- ``GET /v1/model/report/{name}.png``: one of them, by a whitelisted name only.

The pictures are the ones training writes into ``<model dir>/versions/<version>/report/``.
Names are never joined into a path unchecked: only ``f1`` and ``confusion_<label>`` /
``pr_<label>`` for the serving model's labels are served, and the version must look like one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from service import schemas as s
from service.deps import known_query
from service.errors import PROBLEM_MEDIA_TYPE, Problem
from service.security import API_KEY_HEADER
from service.settings import Settings

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KINDS = ("confusion", "pr")

# Request text is rendered with textContent only; the policy is a second line of defence.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def picture_names(labels: list[str] | tuple[str, ...]) -> list[str]:
    """The report pictures a version with these labels may have, in display order."""
    return ["f1", *(f"{kind}_{label}" for label in labels for kind in _KINDS)]


def _report_dir(request: Request) -> tuple[Path, list[str]] | None:
    """The serving version's report folder and its labels, or None without a model."""
    state = getattr(request.app.state, "triage", None)
    model = state.holder.model if state is not None else None
    if model is None or not _VERSION.match(model.version):
        return None
    folder = state.holder.registry.root / "versions" / model.version / "report"
    return folder, list(model.labels)


def _router() -> APIRouter:
    unknown_query = {
        "model": s.Problem,
        "content": {PROBLEM_MEDIA_TYPE: {}},
        "description": "Unknown or repeated query parameters",
    }
    router = APIRouter(
        tags=["web"], dependencies=[Depends(known_query)], responses={422: unknown_query}
    )

    @router.get("/v1/model/report")
    def report_pictures(request: Request) -> dict[str, Any]:
        """The report pictures of the serving model version (names for ``/v1/model/report/``)."""
        found = _report_dir(request)
        if found is None:
            return {"version": None, "pictures": []}
        folder, labels = found
        pictures = []
        for name in picture_names(labels):
            if (folder / f"{name}.png").is_file():
                kind, _, label = name.partition("_")
                pictures.append({"name": name, "kind": kind, "label": label or None})
        return {"version": request.app.state.triage.holder.model.version, "pictures": pictures}

    @router.get(
        "/v1/model/report/{name}.png",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}, 404: {"description": "No such picture"}},
    )
    def report_picture(
        name: str,
        request: Request,
        v: Annotated[
            str | None,
            Query(
                max_length=200,
                description="Ignored: a cache key (the page passes the model version, so a "
                "new version's pictures are fetched anew).",
            ),
        ] = None,
    ) -> Response:
        """One report picture of the serving model version: f1, confusion_<label>, pr_<label>."""
        found = _report_dir(request)
        if found is None or name not in picture_names(found[1]):
            raise Problem(
                404,
                "picture-not-found",
                "No such report picture",
                f"no picture {name!r}; see GET /v1/model/report for the available names",
            )
        path = found[0] / f"{name}.png"
        if not path.is_file():
            raise Problem(
                404,
                "picture-not-found",
                "No such report picture",
                f"the serving model version has no {name}.png; retrain to write its report",
            )
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})

    return router


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Serve the reviewers' page at ``/`` and its files under ``/web/``."""
    index = WEB_DIR / "index.html"
    config = {
        "blind_review_share": settings.blind_review_share,
        "api_key_header": API_KEY_HEADER,
        "suggest_open": settings.suggest_open,
        "max_text_chars": settings.max_text_chars,
    }

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> Response:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @app.get("/v1/web/config", tags=["web"])
    def web_config() -> dict[str, Any]:
        """Settings the review page needs: blind-review share and the API key header."""
        return config

    app.include_router(_router())
    app.mount("/web", _StaticWithPolicy(directory=WEB_DIR), name="web")


class _StaticWithPolicy(StaticFiles):
    """The page's files with the page's headers: ``/web/index.html`` is the page too, and
    was served without its Content-Security-Policy."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_PAGE_HEADERS)
        return response
