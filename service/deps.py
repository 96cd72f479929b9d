"""What handlers receive: the app's state, the serving model, the API key check.

The dependencies are ``async def`` although they never wait: FastAPI runs a plain ``def``
dependency in its thread pool, and those hops were half of the service's own time on a
``/v1/suggest`` call (measured in process, model stubbed: 850 µs with them, 440 µs without),
more under load, where the pool's threads queue for the GIL behind the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from model import TriageModel
from service.demand import DemandIndex
from service.erasure import Erasures
from service.errors import Problem
from service.metrics import Metrics
from service.runtime import ModelHolder, SuggestBatcher
from service.security import API_KEY_HEADER, key_matches
from service.settings import Settings
from service.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    holder: ModelHolder
    batcher: SuggestBatcher
    demand: DemandIndex
    erasures: Erasures
    metrics: Metrics
    api_keys: tuple[str, ...]


async def get_state(request: Request) -> AppState:
    return request.app.state.triage  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


async def get_model(state: StateDep) -> TriageModel:
    """The model serving now; handlers keep this one even if a reload swaps it meanwhile."""
    return serving_model(state)


def serving_model(state: AppState) -> TriageModel:
    """``get_model`` for code outside FastAPI's dependencies: 503 while no model is loaded."""
    model = state.holder.model
    if model is None:
        raise Problem(
            503,
            "model-unavailable",
            "No model loaded",
            state.holder.state.last_reload_error or "the model is still loading",
        )
    return model


ModelDep = Annotated[TriageModel, Depends(get_model)]

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="ApiKey",
    description="Key from TRIAGE_API_KEYS or the key file var/api-key.",
)


def _check(state: AppState, key: str | None) -> None:
    if not key:
        raise Problem(
            401,
            "api-key-missing",
            "API key required",
            f"send a key in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    if not key_matches(key, state.api_keys):
        raise Problem(
            401,
            "api-key-invalid",
            "API key not accepted",
            f"the {API_KEY_HEADER} header does not hold a configured key",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


async def require_key(state: StateDep, key: Annotated[str | None, Security(_api_key)]) -> None:
    """Writes, inbox reads and admin calls."""
    _check(state, key)


async def suggest_access(state: StateDep, key: Annotated[str | None, Security(_api_key)]) -> None:
    """Suggestions: open unless TRIAGE_SUGGEST_OPEN=false."""
    if not state.settings.suggest_open:
        _check(state, key)


def _query_names(route: Any) -> frozenset[str]:
    """The query parameters a route and its dependencies take (kept on the route)."""
    known = getattr(route, "_triage_query_names", None)
    if known is not None:
        return known
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    route._triage_query_names = frozenset(names)
    return route._triage_query_names


async def known_query(request: Request) -> None:
    """Refuse a query parameter the route does not take, or one given twice: a typo such as
    ``?staus=reviewed`` would otherwise list the whole inbox unfiltered, and of a repeated
    filter only the last would count, silently (as unknown body fields are refused)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant") or not request.url.query:
        return
    names = [name for name, _ in request.query_params.multi_items()]
    allowed = _query_names(route)
    unknown = sorted({name for name in names if name not in allowed})
    repeated = sorted({name for name in names if names.count(name) > 1} - set(unknown))
    if not unknown and not repeated:
        return
    known = ", ".join(sorted(allowed)) or "none"
    errors = [
        {"loc": ["query", n], "msg": f"unknown query parameter; known: {known}", "type": "extra"}
        for n in unknown
    ] + [
        {"loc": ["query", n], "msg": "given more than once; give it once", "type": "repeated"}
        for n in repeated
    ]
    raise Problem(
        422,
        "validation-error",
        "Invalid request",
        "; ".join(f"query.{e['loc'][1]}: {e['msg']}" for e in errors),
        errors=errors,
    )
