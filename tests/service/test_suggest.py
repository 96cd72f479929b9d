"""POST /v1/suggest and /v1/suggest/batch, and the problem details of bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_testing import AUTH

from service import schemas as s
from service.app import create_app
from service.fastpath import SuggestFastPath
from service.settings import Settings
from tests.conftest import CROSS_LANGUAGE_PAIR

EVAL = Path(__file__).resolve().parents[2] / "data" / "samples" / "eval.jsonl"

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_done_when_2fa_is_security_with_evidence(client: TestClient) -> None:
    text = "Bitte 2FA für das Admin-Portal"
    response = client.post("/v1/suggest", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "security" in body["labels"]
    assert body["language"] == "de"
    assert body["outcome"] == "security_fix"
    assert body["rationale"]
    assert body["model_version"]
    security = next(ls for ls in body["per_label"] if ls["label"] == "security")
    assert security["evidence"], "explanations must not be empty"
    for label in body["per_label"]:
        assert 0 <= label["score"] <= 1
        for ev in label["evidence"]:
            assert ev["field"] == "text"
            assert text[ev["start"] : ev["end"]] == ev["text"]
    assert body["demand"] is None


def test_evidence_offsets_point_into_title_or_text(client: TestClient) -> None:
    title, text = (
        "Zwei-Faktor-Anmeldung",
        "Bitte 2FA für das Admin-Portal, Passwort allein reicht nicht",
    )
    body = client.post("/v1/suggest", json={"text": text, "title": title}).json()
    fields = {"title": title, "text": text}
    seen = set()
    for label in body["per_label"]:
        for ev in label["evidence"]:
            assert fields[ev["field"]][ev["start"] : ev["end"]] == ev["text"]
            seen.add(ev["field"])
    assert "text" in seen


def test_the_unread_frame_and_denials_are_named_with_offsets(client: TestClient) -> None:
    title = "Wartemusik"
    text = "Hallo zusammen,\nkein Sicherheitsthema: bitte neue Wartemusik.\n\nGruß\nAnna"
    body = client.post("/v1/suggest", json={"text": text, "title": title}).json()
    parts = [
        (i["field"], text[i["start"] : i["end"]].rstrip(": "), i["reason"]) for i in body["ignored"]
    ]
    assert parts == [
        ("text", "Hallo zusammen,", "frame"),
        ("text", "kein Sicherheitsthema", "denial"),
        ("text", "Gruß\nAnna", "frame"),
    ]


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Kunde möchte eine andere Wartemusik für die Hotline-Queue, geht das?", "de"),
        ("How do I set up holiday routing for the hotline of our customer?", "en"),
    ],
    ids=["de-wartemusik", "en-holiday-routing"],
)
def test_language_is_reported(client: TestClient, text: str, lang: str) -> None:
    assert client.post("/v1/suggest", json={"text": text}).json()["language"] == lang


def test_similar_requests_in_the_other_language_are_marked_and_can_be_left_out(
    make_client: Callable[..., TestClient],
) -> None:
    body = {"text": CROSS_LANGUAGE_PAIR[0]}
    similar = make_client().post("/v1/suggest", json=body).json()["similar"]
    across = [s for s in similar if s["cross_language"]]
    assert across and all(s["lang"] == "en" for s in across)
    assert not any(s["cross_language"] for s in similar[: len(similar) - len(across)])
    off = make_client(similar_across_languages=0).post("/v1/suggest", json=body).json()
    assert off["similar"] == similar[: len(similar) - len(across)]


def test_batch_equals_one_by_one(client: TestClient) -> None:
    items = [
        {"id": "a", "text": "Bitte 2FA für das Admin-Portal"},
        {"id": 7, "text": "Native HubSpot integration would save all our customers time"},
        {"text": "Pink phones for one customer's office, purely cosmetic", "title": "Farbe"},
    ]
    response = client.post("/v1/suggest/batch", json={"items": items})
    assert response.status_code == 200, response.text
    batch = response.json()
    assert [b["id"] for b in batch] == ["a", 7, None]
    for item, answer in zip(items, batch, strict=True):
        single = client.post(
            "/v1/suggest", json={k: v for k, v in item.items() if k != "id"}
        ).json()
        assert {k: v for k, v in answer.items() if k != "id"} == single


def test_empty_batch_is_fine(client: TestClient) -> None:
    response = client.post("/v1/suggest/batch", json={"items": []})
    assert response.status_code == 200
    assert response.json() == []


def test_fast_path_answers_byte_for_byte_as_the_route(
    client: TestClient, settings: Settings
) -> None:
    """``service.fastpath`` answers plain calls; the route (without it) must answer the same."""
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not SuggestFastPath]
    samples = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines()[:40]]
    bodies = [{"text": r["text"]} for r in samples] + [
        {"text": "Bitte 2FA für das Admin-Portal", "title": "Zwei-Faktor"},
        {"text": "Straße, Größe, Übergabe – 🙂 and more", "title": None},
    ]
    with TestClient(app) as route_only:
        for body in bodies:
            fast, routed = (
                client.post("/v1/suggest", json=body),
                route_only.post("/v1/suggest", json=body),
            )
            assert fast.status_code == routed.status_code == 200, routed.text
            assert fast.content == routed.content
            assert fast.headers["content-type"] == routed.headers["content-type"]
            # What is written out unvalidated is exactly the schema's shape.
            parsed = s.SuggestionOut.model_validate_json(fast.content)
            assert parsed.model_dump(mode="json") == fast.json()
    assert (
        client.post("/v1/suggest", json={"text": "x"}).headers["content-type"] == "application/json"
    )


def test_fast_path_answers_plain_calls_itself_and_hands_on_the_rest(client: TestClient) -> None:
    async def framework(scope: dict, receive: Callable, send: Callable) -> None:
        message = await receive()  # the body, replayed
        handed_on.append(message["body"])

    def call(body: bytes, content_type: bytes = b"application/json") -> list[dict]:
        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        sent: list[dict] = []
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/suggest",
            "headers": [(b"content-type", content_type)],
            "app": client.app,
        }
        asyncio.run(SuggestFastPath(framework)(scope, receive, send))
        return sent

    handed_on: list[bytes] = []
    answered = call(b'{"text": "Bitte 2FA f\\u00fcr das Admin-Portal"}')
    assert answered[0]["status"] == 200 and b'"security"' in answered[1]["body"]
    assert handed_on == []
    for body, content_type in (
        (b'{"text": ', b"application/json"),
        (b'{"text": ""}', b"application/json"),
        (b'{"text": "%s"}' % (b"x" * 20_001), b"application/json"),
        (b'{"text": "2FA"}', b"text/plain"),
    ):
        assert call(body, content_type) == []
        assert handed_on[-1] == body


def test_concurrent_suggestions_are_batched_correctly(client: TestClient) -> None:
    """The micro-batcher must hand every caller its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"Bitte 2FA für das Admin-Portal von Standort {i}" for i in range(6)] + [
        f"Customer wants hold music number {i} for the queue" for i in range(6)
    ]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: client.post("/v1/suggest", json={"text": t}), texts))
    for text, answer in zip(texts, answers, strict=True):
        body = answer.json()
        for ev in body["per_label"][0]["evidence"]:
            assert text[ev["start"] : ev["end"]] == ev["text"]
        assert ("security" in body["labels"]) == text.startswith("Bitte 2FA")


def test_text_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_text_chars=100)
    assert client.post("/v1/suggest", json={"text": "a" * 100}).status_code == 200
    body = assert_problem(
        client.post("/v1/suggest", json={"text": "a" * 101}), 413, "text-too-long"
    )
    assert "100" in body["detail"]
    assert_problem(
        client.post("/v1/suggest/batch", json={"items": [{"text": "ok"}, {"text": "b" * 101}]}),
        413,
        "text-too-long",
    )
    assert_problem(
        client.post("/v1/requests", json={"text": "c" * 101}, headers=AUTH),
        413,
        "text-too-long",
    )


def test_default_text_limit_is_20000(client: TestClient) -> None:
    assert_problem(client.post("/v1/suggest", json={"text": "x" * 20_001}), 413, "text-too-long")


def test_batch_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(batch_limit=3)
    ok = client.post("/v1/suggest/batch", json={"items": [{"text": "eins"}] * 3})
    assert ok.status_code == 200
    assert_problem(
        client.post("/v1/suggest/batch", json={"items": [{"text": "eins"}] * 4}),
        413,
        "batch-too-large",
    )


def test_default_batch_limit_is_1000(client: TestClient) -> None:
    items = [{"text": "x"}] * 1001
    assert_problem(client.post("/v1/suggest/batch", json={"items": items}), 413, "batch-too-large")


def test_body_over_the_byte_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)
    assert_problem(client.post("/v1/suggest", json={"text": "y" * 2000}), 413, "body-too-large")
    # A chunked upload has no Content-Length to check first: it is refused as it arrives.
    chunks = [b'{"text": "', *[b"y" * 600] * 3, b'"}']
    for path in ("/v1/suggest", "/v1/suggest/batch", "/v1/requests"):
        chunked = client.post(
            path, content=iter(chunks), headers={**AUTH, "content-type": "application/json"}
        )
        assert "content-length" not in chunked.request.headers
        assert "passed" in assert_problem(chunked, 413, "body-too-large")["detail"]
    small = client.post(
        "/v1/suggest",
        content=iter([b'{"text": ', b'"Bitte 2FA"}']),
        headers={"content-type": "application/json"},
    )
    assert small.status_code == 200


@pytest.mark.parametrize("path", ["/v1/suggest", "/v1/suggest/batch", "/v1/requests"])
def test_a_lone_surrogate_is_422_not_500(
    client: TestClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # JSON may carry "\ud800" (half of a surrogate pair) in; no UTF-8 text can hold it.
    text = '"\\ud800 admin portal"'
    body = f'{{"items": [{{"text": {text}}}]}}' if "batch" in path else f'{{"text": {text}}}'
    response = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["input"] == "\\ud800 admin portal"  # shown escaped
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    pair = client.post(
        "/v1/suggest",
        content='{"text": "\\ud83d\\ude00 Bitte 2FA"}',
        headers={"content-type": "application/json"},
    )
    assert pair.status_code == 200  # a whole pair is an emoji


def test_an_unexpected_error_is_a_500_with_the_request_id_logged_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request_id: int) -> dict:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(client.app.state.triage.store, "get_request", broken)
    response = client.get("/v1/requests/1", headers=AUTH)
    problem = assert_problem(response, 500, "internal-error")  # request_id == x-request-id
    assert "fire" not in response.text
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].request_id == problem["request_id"]
    assert "the disk is on fire" in str(errors[0].exc_info[1])


def test_a_database_that_cannot_be_written_is_a_503_to_retry(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def full(*args: object, **kwargs: object) -> None:
        raise OperationalError(
            "INSERT INTO feature_requests (text) VALUES (?)",
            {"text": "Bitte 2FA, geheim"},
            sqlite3.OperationalError("database or disk is full"),
        )

    monkeypatch.setattr(client.app.state.triage.store, "add_request", full)
    response = client.post("/v1/requests", json={"text": "Bitte 2FA, geheim"}, headers=AUTH)
    problem = assert_problem(response, 503, "storage-unavailable")
    assert "database or disk is full" in problem["detail"]
    assert "nothing was stored" in problem["detail"]
    assert response.headers["retry-after"] == "30"
    assert "geheim" not in response.text and "INSERT" not in response.text


@pytest.mark.parametrize(
    "path", ["/v1/suggest", "/v1/suggest/batch", "/v1/requests", "/v1/requests/1/review"]
)
@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "unterminated',
        b"not json at all",
        b'{"text": "a",}',
        b"\xff\xfe",
        '{"text": "Café im Büro"}'.encode("latin-1"),  # JSON is UTF-8
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": ' + b"9" * 5_000 + b"}",
    ],
    ids=[
        "unterminated",
        "not-json",
        "trailing-comma",
        "not-utf8",
        "latin-1-text",
        "nested-too-deep",
        "number-too-long",
    ],
)
def test_malformed_json_is_400(client: TestClient, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    problem = assert_problem(response, 400, "malformed-json")
    if body.startswith(b'{"text": "Caf\xe9'):
        assert "not UTF-8 (byte 0xe9 at offset 13)" in problem["detail"]
    if body.startswith(b"[["):
        assert "nested too deeply" in problem["detail"]
    if body.startswith(b'{"text": 99'):
        assert "a number has more digits than the 4300 allowed" in problem["detail"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/suggest", '{"text": "Bitte 2FA", "title": %s}'),
        ("/v1/suggest/batch", '{"items": [{"text": "a", "id": %s}]}'),
        ("/v1/requests", '{"text": "Bitte 2FA", "received_at": %s}'),
        ("/v1/requests/1/review", '{"labels": [], "reviewer": %s}'),
    ],
)
def test_non_finite_numbers_are_422_not_500(
    client: TestClient, path: str, body: str, constant: str
) -> None:
    # Python's JSON reader takes NaN and Infinity (and reads 1e400 as infinity); JSON cannot
    # write them back, so the echo of the invalid input once failed into a 500.
    response = client.post(
        path, content=body % constant, headers={**AUTH, "content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation-error")
    expected = {"1e400": "Infinity"}.get(constant, constant)
    assert problem["errors"][0]["input"] == expected


@pytest.mark.parametrize(
    "payload, where",
    [
        ({"text": 5}, "text"),
        ({"text": ["a"]}, "text"),
        ({"text": None}, "text"),
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "ok", "title": 3}, "title"),
        ([1, 2], "body"),
        ("just a string", "body"),
        ({"text": "ok", "titel": "Wartemusik"}, "titel"),
    ],
    ids=[
        "int",
        "list",
        "null",
        "missing",
        "empty",
        "title-int",
        "array-body",
        "string-body",
        "unknown-field",
    ],
)
def test_wrong_types_are_422(client: TestClient, payload: object, where: str) -> None:
    body = assert_problem(client.post("/v1/suggest", json=payload), 422, "validation-error")
    assert any(where in err["loc"] for err in body["errors"])


def test_batch_wrong_types_are_422(client: TestClient) -> None:
    assert_problem(client.post("/v1/suggest/batch", json={"items": "x"}), 422, "validation-error")
    assert_problem(
        client.post("/v1/suggest/batch", json={"items": [{"id": 1.5, "text": 1}]}),
        422,
        "validation-error",
    )
    assert_problem(
        client.post("/v1/suggest/batch", json={"items": [{"txt": "Bitte 2FA"}]}),
        422,
        "validation-error",
    )
    for id_ in (True, 1.0):  # would come back as 1, matching nothing the client sent
        assert_problem(
            client.post("/v1/suggest/batch", json={"items": [{"id": id_, "text": "2FA"}]}),
            422,
            "validation-error",
        )


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing"), 404, "not-found")
    assert_problem(client.get("/v1/suggest"), 405, "method-not-allowed")


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/v1/suggest", "POST"),
        ("DELETE", "/v1/requests", "GET, POST"),  # GET and POST are two routes
        ("PATCH", "/v1/requests/1", "DELETE, GET"),
        ("PUT", "/healthz", "GET, HEAD"),
    ],
)
def test_405_allows_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=AUTH)
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("path", ["/v1/suggest/", "/v1/requests/", "/v1/model/"])
def test_a_trailing_slash_is_a_404_problem_not_a_redirect(client: TestClient, path: str) -> None:
    response = client.post(path, json={"text": "Bitte 2FA"}, headers=AUTH, follow_redirects=False)
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    "path, query, named",
    [
        ("/v1/requests", "staus=reviewed", "staus"),
        ("/v1/requests", "status=pending&status=reviewed", "status"),
        ("/v1/requests", "lable=security&limit=5", "lable"),
        ("/v1/model", "verbose=1", "verbose"),
        ("/v1/suggest", "explain=false", "explain"),  # the fast path hands it on
    ],
)
def test_unknown_or_repeated_query_parameters_are_422(
    client: TestClient, path: str, query: str, named: str
) -> None:
    url = f"{path}?{query}"
    if path == "/v1/suggest":
        response = client.post(url, json={"text": "Bitte 2FA"})
    else:
        response = client.get(url, headers=AUTH)
    problem = assert_problem(response, 422, "validation-error")
    assert [e["loc"] for e in problem["errors"]] == [["query", named]]
    assert f"query.{named}" in problem["detail"]


def test_suggest_is_open_by_default_and_keyed_when_configured(
    make_client: Callable[..., TestClient],
) -> None:
    keyed = make_client(suggest_open=False)
    assert_problem(keyed.post("/v1/suggest", json={"text": "2FA"}), 401, "api-key-missing")
    assert_problem(keyed.post("/v1/suggest/batch", json={"items": []}), 401, "api-key-missing")
    assert keyed.post("/v1/suggest", json={"text": "2FA"}, headers=AUTH).status_code == 200


def test_cors_is_off_by_default(make_client: Callable[..., TestClient]) -> None:
    headers = {"Origin": "https://review.example", "Access-Control-Request-Method": "POST"}
    closed = make_client()
    response = closed.options("/v1/suggest", headers=headers)
    assert "access-control-allow-origin" not in response.headers
    opened = make_client(cors_origins=("https://review.example",))
    response = opened.options("/v1/suggest", headers=headers)
    assert response.headers["access-control-allow-origin"] == "https://review.example"


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32
