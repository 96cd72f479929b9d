"""The request inbox: intake, listing, reviews with history, export, API keys."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from postgres_testing import on_both_backends
from service_testing import AUTH
from test_suggest import assert_problem

from model.estimator import LABELS
from model.text import SUPPORTED_LANGS
from service import schemas as s
from training.data import load_samples

SECURITY = "Bitte 2FA für das Admin-Portal, Passwörter allein reichen nicht"
CONFIG = "How do I set up holiday routing for the hotline of our customer?"
NARROW = "Ein Tetris-Spiel auf dem Telefon für den Chef, Spaß muss sein"


def intake(client: TestClient, text: str, **fields: object) -> dict:
    response = client.post("/v1/requests", json={"text": text, **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


@on_both_backends
def test_intake_stores_text_metadata_suggestion_and_version(client: TestClient) -> None:
    response = client.post(
        "/v1/requests",
        json={
            "text": SECURITY,
            "title": "2FA",
            "partner": "Muster IT GmbH",
            "customer": "Bäckerei Groß",
            "source": "form",
            "received_at": "2025-01-14T10:30:00+01:00",
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/requests/{created['id']}"
    assert created["status"] == "pending"
    assert created["received_at"] == "2025-01-14T09:30:00.000000+00:00"
    assert "security" in created["suggestion"]["labels"]
    stored = client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()
    assert stored["text"] == SECURITY
    assert stored["title"] == "2FA"
    assert (stored["partner"], stored["customer"], stored["source"]) == (
        "Muster IT GmbH",
        "Bäckerei Groß",
        "form",
    )
    assert stored["model_version"] == created["model_version"]
    assert stored["suggestion"] == created["suggestion"]
    assert stored["status"] == "pending"
    assert stored["review"] is None and stored["reviews"] == []
    assert stored["lang"] == "de"


def test_received_at_defaults_to_now(client: TestClient) -> None:
    created = intake(client, CONFIG)
    assert created["received_at"].startswith("20")
    assert created["received_at"].endswith("+00:00")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/v1/requests", {"text": "x"}),
        ("get", "/v1/requests", None),
        ("get", "/v1/requests/1", None),
        ("post", "/v1/requests/1/review", {"labels": [], "reviewer": "jd"}),
        ("get", "/v1/reviews/export", None),
        ("post", "/v1/model/reload", None),
    ],
    ids=["intake", "list", "get", "review", "export", "reload"],
)
def test_writes_inbox_and_admin_need_a_key(
    client: TestClient, method: str, path: str, body: object
) -> None:
    kwargs = {"json": body} if body is not None else {}
    missing = getattr(client, method)(path, **kwargs)
    assert_problem(missing, 401, "api-key-missing")
    assert missing.headers["www-authenticate"] == "X-API-Key"
    wrong = getattr(client, method)(path, headers={"X-API-Key": "test-key-2"}, **kwargs)
    assert_problem(wrong, 401, "api-key-invalid")


def test_every_configured_key_works(client: TestClient) -> None:
    response = client.get("/v1/requests", headers={"X-API-Key": "second-key"})
    assert response.status_code == 200


def test_key_file_is_created_once_with_mode_0600(
    make_client: Callable[..., TestClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "var" / "api-key"
    client = make_client(api_keys=(), api_key_file=key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert client.get("/v1/requests", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/v1/requests", headers=AUTH).status_code == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(key_file) in logged
    assert key not in logged
    make_client(api_keys=(), api_key_file=key_file)  # a second start reuses the key
    assert key_file.read_text().strip() == key


@on_both_backends
def test_list_filters_sorts_and_paginates(client: TestClient) -> None:
    ids = {
        "sec": intake(client, SECURITY, received_at="2025-01-01T00:00:00Z")["id"],
        "cfg": intake(client, CONFIG, received_at="2025-01-03T00:00:00Z")["id"],
        "narrow": intake(client, NARROW, received_at="2025-01-02T00:00:00Z")["id"],
    }

    def listed(**params: object) -> list[int]:
        response = client.get("/v1/requests", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    assert listed() == [ids["cfg"], ids["narrow"], ids["sec"]]  # newest first
    assert listed(order="asc") == [ids["sec"], ids["narrow"], ids["cfg"]]
    assert listed(label="security") == [ids["sec"]]
    assert listed(lang="en") == [ids["cfg"]]
    assert ids["sec"] in listed(outcome="security_fix")
    assert listed(status="reviewed") == []
    assert len(listed(status="pending")) == 3
    margins = [
        item["margin"]
        for item in client.get("/v1/requests", params={"sort": "uncertainty"}, headers=AUTH).json()
    ]
    assert margins == sorted(margins)  # most uncertain first
    page = client.get("/v1/requests", params={"limit": 2}, headers=AUTH)
    assert page.headers["x-total-count"] == "3"
    assert len(page.json()) == 2
    assert 'rel="next"' in page.headers["link"]
    rest = client.get("/v1/requests", params={"limit": 2, "offset": 2}, headers=AUTH)
    assert [item["id"] for item in rest.json()] == [ids["sec"]]
    assert "link" not in rest.headers


@on_both_backends
def test_search_finds_words_of_the_text_title_and_sender(client: TestClient) -> None:
    street = intake(
        client, "Anrufe aus der Hauptstraße sollen in die ÜBERLAUF-Queue", partner="Nord IT"
    )
    fifty = intake(client, "Only 50% of calls reach the queue_b group", title="Routing")
    other = intake(client, SECURITY, customer="Bäckerei Groß")

    def found(q: str, **params: object) -> list[int]:
        response = client.get("/v1/requests", params={"q": q, **params}, headers=AUTH)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    assert found("überlauf") == [street["id"]]  # case-folded beyond ASCII, on both backends
    assert found("HAUPTSTRASSE") == [street["id"]]  # ß is ss
    assert found("nord it") == [street["id"]]  # the partner
    assert found("bäckerei") == [other["id"]]  # the customer
    # Umlauts typed as a letter and a combining mark (NFD, as a Mac pastes them) both ways.
    assert found("ba\u0308ckerei") == [other["id"]]
    nfd = intake(client, "Die Wartemusik der Ba\u0308ckerei-Filialen soll wechseln")
    assert found("wartemusik der bäckerei") == [nfd["id"]]
    assert found("routing") == [fifty["id"]]  # the title
    assert found("50%") == [fifty["id"]] and found("%") == [fifty["id"]]  # no wildcards
    assert found("queue_b") == [fifty["id"]] and found("e_b") == [fifty["id"]]
    assert found("queue") == [fifty["id"], street["id"]]
    assert found("queue", lang="de") == [street["id"]]  # with the other filters
    assert found("nowhere") == []
    # Words, not a phrase: each anywhere, in any order, whatever blanks between them.
    assert found("überlauf nord") == [street["id"]]  # text and partner
    assert found("routing queue_b") == [fifty["id"]]  # title and text, reversed
    assert found("queue \u00a0 HAUPTSTRASSE") == [street["id"]]
    assert found("queue nowhere") == []
    page = client.get("/v1/requests", params={"q": "queue & co", "limit": 1}, headers=AUTH)
    assert page.json() == []
    page = client.get("/v1/requests", params={"q": "queue", "limit": 1}, headers=AUTH)
    assert page.headers["x-total-count"] == "2"
    assert (
        page.headers["link"]
        == '</v1/requests?q=queue&sort=received_at&order=desc&limit=1&offset=1>; rel="next"'
    )
    assert client.delete(f"/v1/requests/{street['id']}", headers=AUTH).status_code == 200
    assert found("überlauf") == [] and found("nord") == []


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"sort": "title"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"outcome": "maybe"},
        {"limit": "many"},
        {"q": "x" * 201},
    ],
    ids=["status", "sort", "limit-0", "limit-big", "offset-neg", "outcome", "limit-str", "q-long"],
)
def test_list_rejects_bad_parameters(client: TestClient, params: dict) -> None:
    assert_problem(client.get("/v1/requests", params=params, headers=AUTH), 422, "validation-error")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": " \n\t "}, "text"),  # nothing a reviewer could triage
        ({"text": "\u200b\ufeff\u00ad"}, "text"),  # zero-width and format characters
        ({"text": "\u2800 \u3164"}, "text"),  # blank "letters"
        ({"text": "Bitte 2FA", "partnr": "Muster IT"}, "partnr"),  # the partner would be lost
        ({"text": "Bitte 2FA", "received_at": 1700000000}, "received_at"),  # seconds? no
        ({"text": "Bitte 2FA", "received_at": "1700000000"}, "received_at"),
        ({"text": "Bitte 2FA", "received_at": "2999-01-01T00:00:00Z"}, "received_at"),
    ],
    ids=[
        "blank text",
        "invisible text",
        "blank letters",
        "unknown field",
        "number as time",
        "digits as time",
        "future time",
    ],
)
def test_intake_refuses_blank_text_and_unknown_fields(
    client: TestClient, body: dict, field: str
) -> None:
    problem = assert_problem(
        client.post("/v1/requests", json=body, headers=AUTH), 422, "validation-error"
    )
    assert problem["errors"][0]["loc"][-1] == field
    assert client.get("/v1/requests", headers=AUTH).json() == []


@on_both_backends
def test_missing_request_is_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/requests/999999", headers=AUTH), 404, "request-not-found")
    assert_problem(client.get("/v1/requests/0", headers=AUTH), 422, "validation-error")
    assert_problem(client.get("/v1/requests/abc", headers=AUTH), 422, "validation-error")
    assert_problem(client.get(f"/v1/requests/{2**70}", headers=AUTH), 422, "validation-error")
    # The largest id the API accepts is beyond a 32-bit integer column: still a plain 404.
    assert_problem(client.get(f"/v1/requests/{2**62}", headers=AUTH), 404, "request-not-found")


@on_both_backends
def test_review_records_agreement_and_replaces_with_history(client: TestClient) -> None:
    created = intake(client, SECURITY)
    suggested = created["suggestion"]["labels"]
    first = client.post(
        f"/v1/requests/{created['id']}/review",
        json={
            "labels": suggested,
            "outcome": created["suggestion"]["outcome"],
            "reviewer": "jd",
            "comment": "passt",
        },
        headers=AUTH,
    )
    assert first.status_code == 201, first.text
    assert first.json()["labels_agreed"] is True
    assert first.json()["outcome_agreed"] is True
    second = client.post(
        f"/v1/requests/{created['id']}/review",
        json={
            "labels": ["broad_value", "msp_configurable"],
            # Not what the labels give (partner_configures): the reviewer's call to make.
            "outcome": "prioritize_broad_value",
            "reviewer": "ak",
            "blind": True,
        },
        headers=AUTH,
    )
    assert second.status_code == 201
    body = second.json()
    assert body["labels"] == ["msp_configurable", "broad_value"]  # model order
    assert body["blind"] is True
    assert body["outcome_agreed"] is False
    stored = client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()
    assert stored["status"] == "reviewed"
    assert stored["review"]["id"] == body["id"]
    assert [r["reviewer"] for r in stored["reviews"]] == ["jd", "ak"]
    assert stored["labels"] == ["msp_configurable", "broad_value"]
    assert stored["outcome"] == "prioritize_broad_value"
    assert stored["suggested_labels"] == suggested
    assert [
        i["id"]
        for i in client.get("/v1/requests", params={"status": "reviewed"}, headers=AUTH).json()
    ] == [created["id"]]


@pytest.mark.parametrize(
    ("labels", "outcome", "says"),
    [
        (["security"], "decline_limited_use", "always security_fix"),
        (["security", "broad_value"], "prioritize_broad_value", "always security_fix"),
        ([], "security_fix", "add the label security"),
        (["msp_configurable"], "security_fix", "add the label security"),
        (["security"], "needs_review", "not a decision"),
        ([], "needs_review", "not a decision"),
    ],
)
def test_a_review_may_not_break_the_security_rule(
    client: TestClient, labels: list[str], outcome: str, says: str
) -> None:
    created = intake(client, SECURITY)
    path = f"/v1/requests/{created['id']}/review"
    body = {"labels": labels, "outcome": outcome, "reviewer": "jd"}
    problem = assert_problem(client.post(path, json=body, headers=AUTH), 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "outcome"]
    assert says in problem["detail"]
    assert client.get(path.removesuffix("/review"), headers=AUTH).json()["reviews"] == []


def test_review_with_an_empty_label_list_is_fine(client: TestClient) -> None:
    created = intake(client, NARROW)
    response = client.post(
        f"/v1/requests/{created['id']}/review", json={"labels": [], "reviewer": "jd"}, headers=AUTH
    )
    assert response.status_code == 201
    assert response.json()["outcome"] == "decline_limited_use"  # the guide's rule 4


def test_a_review_without_outcome_takes_the_one_its_labels_give(client: TestClient) -> None:
    created = intake(client, NARROW)
    assert created["suggestion"]["outcome"] != "security_fix"
    path = f"/v1/requests/{created['id']}/review"
    client.post(path, json={"labels": ["security"], "reviewer": "jd"}, headers=AUTH)
    stored = client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()
    assert (stored["labels"], stored["outcome"]) == (["security"], "security_fix")
    listed = client.get("/v1/requests", params={"outcome": "security_fix"}, headers=AUTH)
    assert created["id"] in [r["id"] for r in listed.json()]
    for labels, outcome in (
        (["msp_configurable", "broad_value"], "partner_configures"),
        (["broad_value"], "prioritize_broad_value"),
    ):
        client.post(path, json={"labels": labels, "reviewer": "jd"}, headers=AUTH)
        assert client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()["outcome"] == (
            outcome
        )


@on_both_backends
def test_review_errors(client: TestClient) -> None:
    created = intake(client, SECURITY)
    path = f"/v1/requests/{created['id']}/review"
    body = assert_problem(
        client.post(path, json={"labels": ["security", "urgent"], "reviewer": "jd"}, headers=AUTH),
        422,
        "unknown-label",
    )
    assert "urgent" in body["detail"] and "msp_configurable" in body["detail"]
    assert_problem(
        client.post(
            "/v1/requests/424242/review", json={"labels": [], "reviewer": "jd"}, headers=AUTH
        ),
        404,
        "request-not-found",
    )
    for bad in (
        {"labels": "security", "reviewer": "jd"},
        {"labels": []},
        {"labels": [], "reviewer": ""},
        {"labels": [], "reviewer": "jd", "outcome": "later"},
        {"labels": [1], "reviewer": "jd"},
        {"labels": [], "reviewer": "jd", "blind": "sometimes"},
        {"labels": [], "reviewer": "jd", "blind": "yes"},  # a boolean, not a word for one
        {"labels": [], "reviewer": "   "},  # blanks name nobody
        {"labels": [], "reviewer": "\u200b"},  # nor does a zero-width space
        {"labels": [], "reviewer": "\u2800\u3164"},  # nor blank "letters"
        {"labels": [], "reviewer": "ann\nroot"},  # a name is one line
        {"labels": [], "reviewer": "a\u0007b\u001b[31m"},  # no terminal escapes
        {"labels": [], "reviewer": "X\u202eevil"},  # nor a reversal of the rest of a line
        {"labels": [], "reviewer": "jd", "coment": "typo"},  # dropped, it would be lost
        {"labels": ["security", "security"], "reviewer": "jd"},  # as training refuses it
    ):
        assert_problem(client.post(path, json=bad, headers=AUTH), 422, "validation-error")
    assert_problem(
        client.post(
            path, content=b'{"labels": [', headers={**AUTH, "content-type": "application/json"}
        ),
        400,
        "malformed-json",
    )
    assert client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()["reviews"] == []


def test_a_name_that_breaks_the_pattern_is_told_in_words_not_as_a_regex(
    client: TestClient,
) -> None:
    created = intake(client, CONFIG)
    path = f"/v1/requests/{created['id']}/review"
    body = assert_problem(
        client.post(path, json={"labels": [], "reviewer": "Ann\nBob"}, headers=AUTH),
        422,
        "validation-error",
    )
    (error,) = body["errors"]
    assert error["loc"] == ["body", "reviewer"]
    assert error["type"] == "string_pattern_mismatch"
    assert error["msg"].startswith("must be one line") and "^" not in error["msg"]
    assert "no line breaks" in body["detail"]
    body = assert_problem(
        client.post("/v1/requests", json={"text": "Bitte 2FA", "title": "2FA\x00"}, headers=AUTH),
        422,
        "validation-error",
    )
    assert body["errors"][0]["msg"] == "must not hold a NUL character (\\u0000)"


@on_both_backends
def test_nul_characters_are_refused_alike_on_every_backend(client: TestClient) -> None:
    # PostgreSQL cannot store NUL in text; SQLite could, but the answer must not differ.
    for body in (
        {"text": "Bitte 2FA\x00"},
        {"text": "Bitte 2FA", "title": "2FA\x00"},
        {"text": "Bitte 2FA", "partner": "Muster\x00IT"},
        {"text": "Bitte 2FA", "source": "\x00"},
    ):
        assert_problem(
            client.post("/v1/requests", json=body, headers=AUTH), 422, "validation-error"
        )
    created = intake(client, CONFIG)
    path = f"/v1/requests/{created['id']}/review"
    for body in (
        {"labels": [], "reviewer": "j\x00d"},
        {"labels": [], "reviewer": "jd", "comment": "ok\x00"},
    ):
        assert_problem(client.post(path, json=body, headers=AUTH), 422, "validation-error")
    for params in ({"lang": "d\x00e"}, {"label": "security\x00"}, {"label": "foo"}, {"lang": "xx"}):
        assert_problem(
            client.get("/v1/requests", params=params, headers=AUTH), 422, "validation-error"
        )
    assert client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()["reviews"] == []


@on_both_backends
def test_idempotency_key_stores_a_retried_review_once(client: TestClient) -> None:
    created = intake(client, CONFIG)
    path = f"/v1/requests/{created['id']}/review"
    headers = {**AUTH, "Idempotency-Key": "form-42"}
    first = client.post(
        path, json={"labels": ["msp_configurable"], "reviewer": "jd"}, headers=headers
    )
    again = client.post(
        path, json={"labels": ["msp_configurable"], "reviewer": "jd"}, headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert len(client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()["reviews"]) == 1

    # The key names that one review: another review, or the same one of another request,
    # under it is refused rather than answered with the first (and silently not stored).
    other = intake(client, SECURITY)
    for target, body in (
        (path, {"labels": ["security"], "reviewer": "jd"}),
        (f"/v1/requests/{other['id']}/review", {"labels": ["msp_configurable"], "reviewer": "jd"}),
        ("/v1/requests/999999/review", {"labels": ["msp_configurable"], "reviewer": "jd"}),
    ):
        reused = assert_problem(
            client.post(target, json=body, headers=headers), 422, "idempotency-key-reused"
        )
        assert f"of request {created['id']}" in reused["detail"]
    assert client.get(f"/v1/requests/{other['id']}", headers=AUTH).json()["status"] == "pending"
    # Said blind now, the review stored as not blind is another review, not a retry.
    blind = {"labels": ["msp_configurable"], "reviewer": "jd", "blind": True}
    assert_problem(client.post(path, json=blind, headers=headers), 422, "idempotency-key-reused")
    current = client.get(f"/v1/requests/{created['id']}", headers=AUTH).json()
    assert current["labels"] == ["msp_configurable"] and len(current["reviews"]) == 1


@on_both_backends
def test_export_is_the_training_format(client: TestClient, tmp_path: Path) -> None:
    reviewed = [intake(client, SECURITY, title="Sicherheit", source="form"), intake(client, CONFIG)]
    intake(client, NARROW)  # not reviewed: not exported
    client.post(
        f"/v1/requests/{reviewed[0]['id']}/review",
        json={"labels": ["security"], "reviewer": "jd"},
        headers=AUTH,
    )
    client.post(
        f"/v1/requests/{reviewed[1]['id']}/review",
        json={"labels": ["msp_configurable"], "outcome": "partner_configures", "reviewer": "ak"},
        headers=AUTH,
    )
    response = client.get("/v1/reviews/export", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert list(first)[:4] == ["id", "text", "labels", "lang"]
    assert first["text"] == "Sicherheit\n\n" + SECURITY  # what the model saw
    assert first["labels"] == ["security"] and first["lang"] == "de"
    assert first["reviewer"] == "jd" and first["source"] == "form"
    assert second["labels"] == ["msp_configurable"] and second["lang"] == "en"
    assert second["outcome"] == "partner_configures"
    exported = tmp_path / "export.jsonl"
    exported.write_text(response.text, encoding="utf-8")
    samples = load_samples(exported).samples  # the training loader accepts it as is
    assert [s.labels for s in samples] == [("security",), ("msp_configurable",)]


@on_both_backends
def test_export_skips_unsupported_languages_unless_asked(client: TestClient) -> None:
    french = intake(
        client,
        "Nous voulons une intégration avec notre logiciel de caisse, "
        "s'il vous plaît, merci beaucoup pour votre aide",
    )
    assert french["suggestion"]["language"] not in ("de", "en")
    assert "unsupported_language" in french["suggestion"]["flags"]
    client.post(
        f"/v1/requests/{french['id']}/review", json={"labels": [], "reviewer": "jd"}, headers=AUTH
    )
    assert client.get("/v1/reviews/export", headers=AUTH).text == ""
    flagged = client.get(
        "/v1/reviews/export", params={"include_unsupported": True}, headers=AUTH
    ).text.splitlines()
    assert len(flagged) == 1
    assert json.loads(flagged[0])["unsupported_language"] is True


@on_both_backends
def test_blind_review_is_chosen_at_intake_and_kept(
    make_client: Callable[..., TestClient],
) -> None:
    everyone = make_client(blind_review_share=1.0)
    blind = intake(everyone, CONFIG)
    assert everyone.get(f"/v1/requests/{blind['id']}", headers=AUTH).json()["blind_review"]
    nobody = make_client(blind_review_share=0.0)  # the same database, another setting
    assert nobody.get(f"/v1/requests/{blind['id']}", headers=AUTH).json()["blind_review"]
    seen = intake(nobody, CONFIG)
    assert not nobody.get(f"/v1/requests/{seen['id']}", headers=AUTH).json()["blind_review"]


@on_both_backends
def test_a_review_made_while_the_suggestion_was_withheld_is_recorded_as_blind(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(blind_review_share=1.0)
    request_id = intake(client, CONFIG)["id"]
    review = {"labels": ["msp_configurable"], "reviewer": "jd"}  # the client does not say
    first = client.post(f"/v1/requests/{request_id}/review", json=review, headers=AUTH)
    assert first.status_code == 201, first.text
    assert first.json()["blind"] is True
    # Reviewed now, so the suggestion shows: a second review saw it, unless it says otherwise.
    second = client.post(f"/v1/requests/{request_id}/review", json=review, headers=AUTH)
    assert second.json()["blind"] is False
    seen = intake(make_client(blind_review_share=0.0), CONFIG)["id"]
    third = client.post(f"/v1/requests/{seen}/review", json=review, headers=AUTH)
    assert third.json()["blind"] is False


# Everything in an inbox answer that the suggestion could be read from.
WITHHELD = ("labels", "outcome", "suggested_labels", "suggested_outcome", "margin", "demand")
WITHHELD_ONE = (*WITHHELD, "suggestion", "earlier_similar", "later_similar")
OUTCOMES = (
    "security_fix",
    "partner_configures",
    "prioritize_broad_value",
    "decline_limited_use",
    "needs_review",
)


@on_both_backends
def test_pending_blind_requests_reveal_no_suggestion(
    make_client: Callable[..., TestClient],
) -> None:
    blind_client = make_client(blind_review_share=1.0)
    blind = {text: intake(blind_client, text)["id"] for text in (SECURITY, CONFIG, NARROW)}
    client = make_client(blind_review_share=0.0)  # same database: seen requests beside them
    seen = {text: intake(client, text) for text in (SECURITY, CONFIG, NARROW)}
    suggested = {text: created["suggestion"] for text, created in seen.items()}
    assert len({tuple(sg["labels"]) for sg in suggested.values()}) == 3  # they differ

    def listed(**params: object) -> list[dict]:
        query = {"limit": 500, **{k: v for k, v in params.items() if v is not None}}
        response = client.get("/v1/requests", params=query, headers=AUTH)
        assert response.status_code == 200, response.text
        assert int(response.headers["x-total-count"]) == len(response.json())
        return response.json()

    rows = {row["id"]: row for row in listed()}
    for request_id in blind.values():
        assert rows[request_id]["blind_review"] is True
        assert all(rows[request_id][key] is None for key in WITHHELD)
        one = client.get(f"/v1/requests/{request_id}", headers=AUTH).json()
        assert all(one[key] is None for key in WITHHELD_ONE), one
        assert one["text"] and one["lang"] and one["status"] == "pending"

    # Filters: a blind pending request matches no label and no outcome, whatever was
    # suggested, so it looks the same in every filtered list as its differently-suggested
    # siblings do; seen requests with the same texts are found as usual.
    for label in ("msp_configurable", "security", "broad_value"):
        found = {row["id"] for row in listed(label=label)}
        assert not found & set(blind.values()), label
        assert found == {seen[t]["id"] for t in seen if label in suggested[t]["labels"]}
    for outcome in OUTCOMES:
        for status in (None, "pending"):
            found = {row["id"] for row in listed(outcome=outcome, status=status)}
            assert not found & set(blind.values()), outcome
            assert found == {seen[t]["id"] for t in seen if suggested[t]["outcome"] == outcome}
    assert {row["id"] for row in listed(status="pending")} >= set(blind.values())
    assert {row["id"] for row in listed(lang="en")} >= {blind[CONFIG], seen[CONFIG]["id"]}

    # Sorted by uncertainty: seen requests by margin, then the blind ones in id order.
    for order, ids in (("asc", sorted(blind.values())), ("desc", sorted(blind.values())[::-1])):
        ranked = [row["id"] for row in listed(sort="uncertainty", order=order)]
        assert ranked[3:] == ids, order
        margins = [rows[i]["margin"] for i in ranked[:3]]
        assert margins == sorted(margins, reverse=order == "desc")
    paged = client.get(
        "/v1/requests", params={"sort": "uncertainty", "limit": 2, "offset": 3}, headers=AUTH
    ).json()
    assert [row["id"] for row in paged] == sorted(blind.values())[:2]

    # Reviewed, a blind request is like any other: its suggestion and the reviewer's labels.
    reviewed = blind[SECURITY]
    response = client.post(
        f"/v1/requests/{reviewed}/review",
        json={"labels": ["broad_value"], "reviewer": "jd", "blind": True},
        headers=AUTH,
    )
    assert response.status_code == 201
    assert response.json()["labels_agreed"] is (suggested[SECURITY]["labels"] == ["broad_value"])
    one = client.get(f"/v1/requests/{reviewed}", headers=AUTH).json()
    assert one["suggested_labels"] == suggested[SECURITY]["labels"]
    assert one["suggestion"]["labels"] == suggested[SECURITY]["labels"]
    assert one["labels"] == ["broad_value"]
    assert reviewed in {row["id"] for row in listed(label="broad_value")}
    assert reviewed not in {row["id"] for row in listed(label="security")}


def test_the_filters_know_the_labels_and_languages_the_model_has() -> None:
    assert get_args(s.Label) == LABELS
    assert set(get_args(s.Language)) == {*SUPPORTED_LANGS, "other"}


def test_a_received_at_outside_the_utc_calendar_is_422(client: TestClient) -> None:
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"):
        problem = assert_problem(
            client.post("/v1/requests", json={"text": "2FA", "received_at": moment}, headers=AUTH),
            422,
            "validation-error",
        )
        assert "once converted to UTC" in problem["detail"]
    fine = client.post(
        "/v1/requests",
        json={"text": "2FA", "received_at": "2025-01-14T12:30:00+02:00"},
        headers=AUTH,
    )
    assert fine.json()["received_at"].startswith("2025-01-14T10:30:00")
    # A sender's clock a few minutes fast is taken; far in the future is not (test above).
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    ahead = client.post("/v1/requests", json={"text": "2FA", "received_at": soon}, headers=AUTH)
    assert ahead.status_code == 201, ahead.text


def test_no_answer_a_reviewer_reads_depends_on_a_pending_blind_suggestion(
    make_client: Callable[..., TestClient],
) -> None:
    """Every answer the review page and reviewers read, before and after the stored suggestion
    of a pending blind request is swapped for a different one: alike, so none shows it (not
    even through a list's order, count or paging).

    The intake answer is not among them: it goes to the intake form, not to a reviewer, and
    carries the suggestion like any other (withheld there it would hide nothing a reviewer
    could not get from ``/v1/suggest`` with the same text, and would tell the form which
    requests are reviewed blind)."""
    import sqlalchemy as sa

    from service.store import feature_requests

    seen_client = make_client(blind_review_share=0.0)
    earlier = intake(seen_client, NARROW + "?", partner="Erste IT")
    blind = intake(make_client(blind_review_share=1.0), NARROW, partner="Zweite IT")["id"]
    later = intake(seen_client, NARROW + "!", partner="Dritte IT")
    other = intake(seen_client, SECURITY, partner="Vierte IT")
    client = make_client(blind_review_share=0.0)
    reviewed = intake(client, CONFIG)["id"]
    review = {"labels": ["msp_configurable"], "reviewer": "jd"}
    assert client.post(f"/v1/requests/{reviewed}/review", json=review, headers=AUTH).is_success

    queries: list[dict[str, object]] = [{}, {"status": "pending"}, {"lang": "de"}, {"q": "tetris"}]
    queries += [{"label": label} for label in LABELS]
    queries += [{"outcome": outcome} for outcome in OUTCOMES]
    queries += [
        {"sort": "uncertainty", "order": order, "limit": limit, "offset": offset}
        for order in ("asc", "desc")
        for limit, offset in ((50, 0), (1, 0), (1, 1), (2, 2))
    ]
    queries += [{"sort": "received_at", "order": "asc", "limit": 2, "offset": 1}]
    request_ids = (earlier["id"], blind, later["id"], other["id"], reviewed)

    def answers() -> list[tuple[str, int, str, str, str]]:
        calls = [("/v1/requests", query) for query in queries]
        calls += [(f"/v1/requests/{request_id}", {}) for request_id in request_ids]
        calls += [("/v1/reviews/export", {}), ("/v1/web/config", {})]
        seen = []
        for path, query in calls:
            response = client.get(path, params=query, headers=AUTH)
            assert response.status_code == 200, (path, query, response.text)
            total, link = response.headers.get("x-total-count"), response.headers.get("link")
            seen.append((path, response.status_code, response.text, str(total), str(link)))
        return seen

    before = answers()
    stored = client.get(f"/v1/requests/{other['id']}", headers=AUTH).json()
    assert stored["outcome"] != "decline_limited_use"  # so the swap changes what is stored
    swapped = {
        "suggestion": json.dumps(stored["suggestion"]),
        "suggested_labels": json.dumps(stored["suggested_labels"]),
        "suggested_outcome": stored["suggested_outcome"],
        "margin": stored["margin"] / 7,
        "labels": json.dumps(stored["labels"]),
        "outcome": stored["outcome"],
        "demand": json.dumps(stored["demand"]),
    }
    with client.app.state.triage.store.engine.begin() as conn:
        conn.execute(
            sa.update(feature_requests).where(feature_requests.c.id == blind).values(**swapped)
        )
    after = answers()
    for one, two in zip(before, after, strict=True):
        assert one == two, one[0]
    # The check can tell: reviewed, the request shows the swapped suggestion.
    response = client.post(f"/v1/requests/{blind}/review", json=review, headers=AUTH)
    assert response.status_code == 201
    shown = client.get(f"/v1/requests/{blind}", headers=AUTH).json()
    assert shown["suggested_outcome"] == stored["suggested_outcome"]
