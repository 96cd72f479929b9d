"""HTTP routes. Handlers convert between schemas and ``model``/store calls, nothing more."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic_core import to_json

from model import ArtifactError, reviewed_request_id, reviewed_sample_id
from model.outcome import outcome_for_labels
from service import schemas as s
from service.convert import margin, suggestion_out
from service.demand import apply_demand, compose, recount
from service.deps import (
    AppState,
    ModelDep,
    StateDep,
    known_query,
    require_key,
    serving_model,
    suggest_access,
)
from service.errors import PROBLEM_MEDIA_TYPE, Problem
from service.store import Erased, KeyReused, NotFound, suggestion_hidden, to_iso

logger = logging.getLogger(__name__)

_PROBLEM = {"model": s.Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed JSON",
        401: "API key missing or not accepted",
        404: "No such feature request",
        410: "The feature request was erased",
        413: "Body, text or batch too large",
        415: "The body is not sent as application/json",
        422: "Invalid field values, unknown or repeated query parameters, or an unknown label",
        503: "No model loaded",
    }
    return {code: {**_PROBLEM, "description": descriptions[code]} for code in codes}


# Every route refuses unknown or repeated query parameters (422), so every route says so.
router = APIRouter(dependencies=[Depends(known_query)], responses=_errors(422))
MAX_ID = 2**62  # larger ids cannot exist; bound them so the database never sees an overflow


def _check_text(state: AppState, value: str, where: str) -> None:
    limit = state.settings.max_text_chars
    if len(value) > limit:
        raise Problem(
            413,
            "text-too-long",
            "Text too long",
            f"{where} has {len(value)} characters; the limit is {limit} (TRIAGE_MAX_TEXT_CHARS)",
        )


# --- suggestions ---------------------------------------------------------------------------


@router.post(
    "/v1/suggest",
    response_model=s.SuggestionOut,
    dependencies=[Depends(suggest_access)],
    responses=_errors(400, 401, 413, 415, 422, 503),
    tags=["suggest"],
)
async def suggest(
    item: Annotated[s.SuggestIn, Body(openapi_examples=s.SUGGEST_EXAMPLES)], state: StateDep
) -> Any:
    """Suggest labels, an outcome and its reasons for one feature request."""
    return Response(await suggestion_json(state, item), media_type="application/json")


async def suggestion_json(state: AppState, item: s.SuggestIn) -> bytes:
    """The body of a ``/v1/suggest`` answer; the route and ``service.fastpath`` share it.

    ``suggestion_out`` builds the ``SuggestionOut`` shape (a test holds it to the schema),
    so it is written out as is: validating it into models first, only to serialise those,
    cost more than the rest of the service's own work on the call.
    """
    _check_text(state, item.text, "text")
    serving_model(state)
    _, suggestion = await state.batcher.suggest(compose(item.title, item.text))
    state.metrics.count_suggestion(suggestion.labels, suggestion.outcome)
    return to_json(suggestion_out(suggestion, item.title, state.erasures.hidden))


@router.post(
    "/v1/suggest/batch",
    response_model=list[s.BatchItemOut],
    dependencies=[Depends(suggest_access)],
    responses=_errors(400, 401, 413, 415, 422, 503),
    tags=["suggest"],
)
async def suggest_batch(
    batch: Annotated[s.BatchIn, Body(openapi_examples=s.BATCH_EXAMPLES)],
    state: StateDep,
    model: ModelDep,
) -> Any:
    """Suggest for up to TRIAGE_BATCH_LIMIT feature requests at once, in the given order."""
    limit = state.settings.batch_limit
    if len(batch.items) > limit:
        raise Problem(
            413,
            "batch-too-large",
            "Batch too large",
            f"{len(batch.items)} items; the limit is {limit} (TRIAGE_BATCH_LIMIT)",
        )
    for i, item in enumerate(batch.items):
        _check_text(state, item.text, f"items[{i}].text")
    texts = [compose(item.title, item.text) for item in batch.items]
    suggestions = await anyio.to_thread.run_sync(model.suggest_many, texts) if texts else []
    out, hidden = [], state.erasures.hidden
    for item, suggestion in zip(batch.items, suggestions, strict=True):
        state.metrics.count_suggestion(suggestion.labels, suggestion.outcome)
        out.append({"id": item.id, **suggestion_out(suggestion, item.title, hidden)})
    return out


# --- inbox ---------------------------------------------------------------------------------


# Withheld (null) while a blind review is pending: everything the suggestion could be read
# from. The list filters and sort follow the same rule (``Store.list_requests``).
_SUGGESTION_FIELDS = ("labels", "outcome", "suggested_labels", "suggested_outcome", "margin")
_REQUEST_SUGGESTION_FIELDS = ("suggestion", "demand", "earlier_similar", "later_similar")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "id": row["id"],
        "received_at": row["received_at"],
        "title": row["title"],
        "text": row["text"],
        "partner": row["partner"],
        "customer": row["customer"],
        "source": row["source"],
        "lang": row["lang"],
        "status": row["status"],
        "labels": row["labels"],
        "outcome": row["outcome"],
        "suggested_labels": row["suggested_labels"],
        "suggested_outcome": row["suggested_outcome"],
        "margin": row["margin"],
        "model_version": row["model_version"],
        "demand": row["demand"],
        "blind_review": bool(row["blind_review"]),
    }
    if suggestion_hidden(row):
        summary.update(dict.fromkeys((*_SUGGESTION_FIELDS, "demand")))
    return summary


def _link(link: tuple[int, float, str], lang: str) -> dict[str, Any]:
    """A near-duplicate link as ``Link``: the other request's id, similarity and language."""
    other, similarity, other_lang = link
    return {
        "id": other,
        "similarity": similarity,
        "lang": other_lang,
        "cross_language": other_lang != lang,
    }


def _review_out(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in s.ReviewOut.model_fields}


@router.post(
    "/v1/requests",
    response_model=s.RequestCreatedOut,
    status_code=201,
    dependencies=[Depends(require_key)],
    responses=_errors(400, 401, 413, 415, 422, 503),
    tags=["inbox"],
)
def create_request(
    item: Annotated[s.FeatureRequestIn, Body(openapi_examples=s.REQUEST_EXAMPLES)],
    state: StateDep,
    model: ModelDep,
    response: Response,
) -> Any:
    """Store a feature request from the intake form with its suggestion; returns its id."""
    _check_text(state, item.text, "text")
    text = compose(item.title, item.text)
    logger.debug("intake text: %s", text)
    # One reading of the text serves the suggestion and the near-duplicate search.
    (suggestion,), query = model.suggest_and_compare([text])
    neighbours = state.demand.neighbours(model, query)
    hidden = state.erasures.hidden  # refreshed by ``neighbours`` just now
    received_at = to_iso(item.received_at or datetime.now(UTC))

    def record_without(erased: frozenset[int]) -> dict[str, Any]:
        """The stored record, leaving out the requests in ``erased``: its near-duplicates
        count without them, and its suggestion does not show them as similar."""
        found = [n for n in neighbours if n.id not in erased]
        demand = state.demand.demand(found, item.partner, item.customer)
        left_out = hidden | {reviewed_sample_id(i) for i in erased}
        out = apply_demand(suggestion_out(suggestion, item.title, left_out), demand)
        return {
            "received_at": received_at,
            "title": item.title,
            "text": item.text,
            "partner": item.partner,
            "customer": item.customer,
            "source": item.source,
            "lang": suggestion.language,
            "model_version": model.version,
            "suggestion": out,
            "suggested_labels": list(suggestion.labels),
            "suggested_outcome": out["outcome"],
            "margin": round(margin(suggestion), 6),
            "labels": list(suggestion.labels),
            "outcome": out["outcome"],
            "demand": demand,
        }

    # The store makes the record again if any request it refers to was erased meanwhile.
    records = [record_without(frozenset())]

    def revise(erased: frozenset[int]) -> dict[str, Any]:
        logger.info("intake: %d requests it refers to were erased meanwhile", len(erased))
        records.append(record_without(erased))
        return records[-1]

    # The similar past requests it shows: those the model was trained on from reviews here.
    similar = [past["id"] for past in records[0]["suggestion"]["similar"]]
    request_id, blind = state.store.add_request(
        records[0],
        [(n.id, n.similarity) for n in neighbours],
        model.version,
        blind_share=state.settings.blind_review_share,
        mentions={i for past in similar if (i := reviewed_request_id(past)) is not None},
        revise=revise,
    )
    record = records[-1]
    out, demand = record["suggestion"], record["demand"]
    state.demand.remember(model, request_id, query, item.partner, item.customer)
    state.metrics.count_suggestion(suggestion.labels, out["outcome"])
    logger.info(
        "stored feature request %d (lang %s, outcome %s, %d near-duplicates, %d partners%s)",
        request_id,
        suggestion.language,
        out["outcome"],
        demand["similar_requests"],
        demand["partners"],
        ", blind review" if blind else "",
    )
    response.headers["Location"] = f"/v1/requests/{request_id}"
    return {
        "id": request_id,
        "status": "pending",
        "received_at": received_at,
        "model_version": model.version,
        "suggestion": out,
    }


@router.get(
    "/v1/requests",
    response_model=list[s.RequestSummaryOut],
    dependencies=[Depends(require_key)],
    responses=_errors(401, 422),
    tags=["inbox"],
)
def list_requests(
    state: StateDep,
    response: Response,
    status: s.Status | None = None,
    label: s.Label | None = None,
    outcome: s.Outcome | None = None,
    lang: s.Language | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=s.NO_NUL,
            description="Words in the title, text, partner, customer or source: each word "
            "anywhere, in any order (case-insensitive; ß matches ss; a word matches inside "
            "longer ones).",
        ),
    ] = None,
    sort: Literal["received_at", "uncertainty"] = "received_at",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="Default: newest first for received_at, most uncertain first."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Any:
    """List stored requests, filtered and sorted; X-Total-Count and Link headers paginate."""
    order = order or ("desc" if sort == "received_at" else "asc")
    rows, total = state.store.list_requests(
        status=status,
        label=label,
        outcome=outcome,
        lang=lang,
        q=q,
        sort=sort,
        order=order,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    if offset + len(rows) < total:
        query = {
            k: v
            for k, v in {
                "status": status,
                "label": label,
                "outcome": outcome,
                "lang": lang,
                "q": q,
                "sort": sort,
                "order": order,
                "limit": limit,
                "offset": offset + limit,
            }.items()
            if v
        }
        response.headers["Link"] = f'</v1/requests?{urlencode(query)}>; rel="next"'
    return [_summary(row) for row in rows]


@router.get(
    "/v1/requests/{request_id}",
    response_model=s.RequestOut,
    dependencies=[Depends(require_key)],
    responses=_errors(401, 404, 410, 422),
    tags=["inbox"],
)
def get_request(request_id: Annotated[int, Path(ge=1, le=MAX_ID)], state: StateDep) -> Any:
    """One stored request: suggestion, demand, current review and review history."""
    try:
        row = state.store.get_request(request_id)
    except NotFound:
        raise _missing(request_id) from None
    except Erased as erased:
        raise _gone(erased) from None
    history = [_review_out(r) for r in row["reviews"]]
    current = next((r for r in history if r["id"] == row["current_review_id"]), None)
    out = {
        **_summary(row),
        "stored_at": row["stored_at"],
        "suggestion": row["suggestion"],
        "review": current,
        "reviews": history,
        "earlier_similar": [_link(link, row["lang"]) for link in row["earlier_similar"]],
        "later_similar": [_link(link, row["lang"]) for link in row["later_similar"]],
    }
    if suggestion_hidden(row):
        out.update(dict.fromkeys(_REQUEST_SUGGESTION_FIELDS))
    return out


@router.post(
    "/v1/requests/{request_id}/review",
    response_model=s.ReviewOut,
    status_code=201,
    dependencies=[Depends(require_key)],
    responses={
        200: {"model": s.ReviewOut, "description": "Replay of an Idempotency-Key"},
        **_errors(400, 401, 404, 410, 413, 415, 422, 503),
    },
    tags=["inbox"],
)
def review_request(
    request_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    review: Annotated[s.ReviewIn, Body(openapi_examples=s.REVIEW_EXAMPLES)],
    state: StateDep,
    model: ModelDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            pattern=s.NO_NUL,
            description=(
                "Retries with the same key store the review once; the same key with a "
                "different review or request is refused (422)."
            ),
        ),
    ] = None,
) -> Any:
    """Record the human decision; a later review replaces it, and history is kept."""
    unknown = [label for label in review.labels if label not in model.labels]
    if unknown:
        raise Problem(
            422,
            "unknown-label",
            "Unknown label",
            f"unknown label(s) {', '.join(map(repr, unknown))}; known: {', '.join(model.labels)}",
            errors=[
                {"loc": ["body", "labels"], "msg": f"unknown label {u!r}", "type": "unknown_label"}
                for u in unknown
            ],
        )
    labels = [label for label in model.labels if label in review.labels]  # model order, unique
    # Not given: what the guide's rules give the reviewer's labels (not the suggestion's
    # outcome, which a review that adds "security" would otherwise leave at "decline").
    outcome = review.outcome or outcome_for_labels(labels)
    try:
        stored, created = state.store.add_review(
            request_id,
            {
                "labels": labels,
                "outcome": outcome,
                "comment": review.comment,
                "reviewer": review.reviewer,
                "blind": review.blind,
            },
            idempotency_key or None,
        )
    except NotFound:
        raise _missing(request_id, "to review") from None
    except Erased as erased:
        raise _gone(erased) from None
    except KeyReused as reused:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key already used",
            f"this Idempotency-Key was used for a different review (of request "
            f"{reused.request_id}); a retry must repeat that review exactly, a new review "
            "needs a new key",
        ) from None
    if created:
        state.metrics.reviews.inc()
        logger.info(
            "stored review %d of request %d (agreed: %s)",
            stored["id"],
            request_id,
            stored["labels_agreed"],
        )
    body = s.ReviewOut.model_validate(_review_out(stored)).model_dump(mode="json")
    return JSONResponse(
        body,
        status_code=201 if created else 200,
        headers={"Location": f"/v1/requests/{request_id}"},
    )


@router.delete(
    "/v1/requests/{request_id}",
    response_model=s.ErasureOut,
    dependencies=[Depends(require_key)],
    responses=_errors(401, 404, 410, 422),
    tags=["inbox"],
)
def erase_request(request_id: Annotated[int, Path(ge=1, le=MAX_ID)], state: StateDep) -> Any:
    """Erase a request (a data subject's right to erasure): its text, title, partner,
    customer, source, suggestion, reviews and near-duplicate links. Later requests whose
    demand counted it are counted again without it.

    Only a tombstone stays (id, received and erased times, language, model version), so the
    id is not given out again and later calls for it answer 410. The request is no longer
    exported or collected for retraining; a model trained on its review still holds its
    text until the next retraining, and answers leave it out of the similar past requests.
    """
    try:
        erased = state.store.erase_request(request_id, recount=recount)
    except NotFound:
        raise _missing(request_id, "to erase") from None
    except Erased as gone:
        raise _gone(gone) from None
    state.erasures.refresh()
    logger.info(
        "erased feature request %d (%d reviews, %d links, %d demands recounted, "
        "%d stored suggestions scrubbed)",
        request_id,
        erased["reviews_removed"],
        erased["links_removed"],
        erased["demand_recounted"],
        erased["suggestions_scrubbed"],
    )
    return {**erased, "status": "erased"}


def _missing(request_id: int, purpose: str = "") -> Problem:
    detail = f"there is no feature request {request_id}" + (f" {purpose}" if purpose else "")
    return Problem(404, "request-not-found", "No such feature request", detail)


def _gone(erased: Erased) -> Problem:
    return Problem(
        410,
        "request-erased",
        "Feature request erased",
        f"feature request {erased.request_id} was erased at {erased.erased_at}",
    )


@router.get(
    "/v1/reviews/export",
    dependencies=[Depends(require_key)],
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "One training record per line",
        },
        **_errors(401, 422),
    },
    response_class=StreamingResponse,
    tags=["inbox"],
)
def export_reviews(
    state: StateDep,
    include_unsupported: Annotated[
        bool, Query(description="Also export requests in neither German nor English.")
    ] = False,
) -> StreamingResponse:
    """Reviewed requests as JSON Lines in the training format, current review's labels."""
    return StreamingResponse(
        _export_lines(state, include_unsupported), media_type="application/x-ndjson"
    )


def _export_lines(state: AppState, include_unsupported: bool) -> Iterator[bytes]:
    """``{"id","text","labels","lang",...}``; ``text`` is what the model saw (title + text).

    Requests whose detected language is neither de nor en are skipped (the training data
    accepts only those two, and the label would be on a text the model cannot read); with
    ``include_unsupported`` they are written with their detected ``lang`` and
    ``"unsupported_language": true`` for a person to fix before training.
    """
    written = skipped = 0
    for row in state.store.reviewed_requests():
        supported = row["lang"] in ("de", "en")
        if not supported and not include_unsupported:
            skipped += 1
            continue
        record: dict[str, Any] = {
            "id": f"inbox-{row['id']}",
            "text": compose(row["title"], row["text"]),
            "labels": row["labels"],
            "lang": row["lang"],
            "title": row["title"],
            "source": row["source"],
            "created_at": row["received_at"],
            "reviewer": row["reviewer"],
            "reviewed_at": row["reviewed_at"],
            "outcome": row["outcome"],
            "blind": bool(row["blind"]),
            "suggested_labels": row["suggested_labels"],
            "suggested_outcome": row["suggested_outcome"],
            "model_version": row["model_version"],
        }
        record = {k: v for k, v in record.items() if v is not None}
        if not supported:
            record["unsupported_language"] = True
        written += 1
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    logger.info("exported %d reviews; skipped %d in unsupported languages", written, skipped)


# --- model, health, metrics ----------------------------------------------------------------


@router.get("/v1/model", response_model=s.ModelOut, tags=["model"])
def model_card(state: StateDep) -> Any:
    """The serving model's card: version, training time, data, metrics, thresholds."""
    holder = state.holder
    model = holder.model
    manifest: dict[str, Any] = dict(model.manifest) if model else {}
    try:
        current = holder.registry.current()
    except (OSError, ArtifactError):  # the reload that meets it says why
        current = None
    return {
        "version": model.version if model else None,
        "trained_at": manifest.get("created_at"),
        "labels": list(model.labels) if model else [],
        "thresholds": model.thresholds if model else {},
        "uncertainty_band": holder.uncertainty_band,
        "metrics": manifest.get("metrics", {}),
        "concepts": manifest.get("concepts"),
        "data": {"train": manifest.get("data", []), "eval": manifest.get("eval_data")},
        "config": manifest.get("config", {}),
        "code": manifest.get("code", {}),
        "libs": manifest.get("libs", {}),
        "loaded_at": holder.state.loaded_at,
        "registry_current": current,
        "reloading": holder.state.reloading,
        "last_reload_at": holder.state.last_reload_at,
        "last_reload_error": holder.state.last_reload_error,
    }


@router.post(
    "/v1/model/reload",
    response_model=s.ReloadOut,
    status_code=202,
    dependencies=[Depends(require_key)],
    responses={
        200: {"model": s.ReloadOut, "description": "Finished (wait=true)"},
        **_errors(401, 422),
    },
    tags=["model"],
)
async def reload_model(
    state: StateDep,
    wait: Annotated[bool, Query(description="Answer when the load has finished.")] = False,
) -> Any:
    """Load and verify the registry's current version in the background, then swap.

    Calls that come while a load runs share one more load, started when it has finished.
    """
    holder = state.holder
    if not wait:
        holder.reload_in_background(force=True)
        return {
            "status": "started",
            "version": holder.model.version if holder.model else None,
            "last_reload_error": holder.state.last_reload_error,
        }
    before = holder.model.version if holder.model else None
    outcome = await holder.reload_outcome_async(force=True)  # holds no worker thread
    status = (
        "failed"
        if not outcome.swapped
        else ("loaded" if outcome.version != before else "unchanged")
    )
    return JSONResponse(
        s.ReloadOut(
            status=status, version=outcome.version, last_reload_error=outcome.error
        ).model_dump(),
        status_code=200,
    )


# HEAD too: some load balancers and uptime checks probe with it. Its route stays out of the
# OpenAPI description: one route for both methods gave both operations the same operationId.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=s.AliveOut, tags=["health"])
async def healthz() -> Any:
    """Alive (the process answers); ``/readyz`` says whether it can serve."""
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    response_model=s.HealthOut,
    responses={503: {"model": s.HealthOut}},
    tags=["health"],
)
def readyz(state: StateDep) -> Any:
    """Ready: a model is loaded and the database answers."""
    model = state.holder.model
    database = state.store.ping()
    body = {
        "status": "ok" if model and database else "unavailable",
        "model_version": model.version if model else None,
        "database": database,
    }
    return JSONResponse(body, status_code=200 if model and database else 503)


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(state: StateDep) -> Response:
    """Prometheus metrics."""
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
