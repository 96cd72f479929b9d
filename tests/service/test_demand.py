"""Demand signal: near-duplicates among earlier requests and how many partners asked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from postgres_testing import on_both_backends
from service_testing import AUTH
from test_inbox import NARROW, SECURITY, intake

from model import predictor
from service.demand import apply_demand, name_key, recount, without_demand
from tests.conftest import CROSS_LANGUAGE_PAIR


def test_one_partner_spelt_several_ways_is_one_name() -> None:
    spellings = [
        "Müller Telecom",
        "Mu\u0308ller Telecom",  # a combining mark, as a Mac pastes it
        "MÜLLER TELECOM ",
        "Müller  Telecom",  # two blanks
        "Müller\u00a0Telecom",  # a non-breaking space
        "Mül\u00adler Tele\u200bcom",  # a soft hyphen, a zero-width space
        "Ｍüller Telecom",  # a fullwidth letter
    ]
    assert {name_key(name) for name in spellings} == {"müller telecom"}
    assert name_key("Müller Telekom") != name_key("Müller Telecom")
    assert name_key(" \u00a0\u200b ") is None and name_key(None) is None


def test_a_partner_spelt_otherwise_does_not_add_to_the_demand(client: TestClient) -> None:
    first = intake(client, NARROW, partner="Müller Telecom")
    for spelling in ("Mu\u0308ller Telecom", "Müller  Telecom", "Müller\u00a0Telecom"):
        demand = intake(client, NARROW, partner=spelling)["suggestion"]["demand"]
        assert demand["partners"] == 1, spelling
    assert first["suggestion"]["outcome"] == "decline_limited_use"


@on_both_backends
def test_many_partners_turn_a_decline_into_a_review(client: TestClient) -> None:
    first = intake(client, NARROW, partner="Muster IT", customer="Chef GmbH")
    assert first["suggestion"]["outcome"] == "decline_limited_use"
    assert first["suggestion"]["demand"]["similar_requests"] == 0
    second = intake(client, NARROW + "!", partner="muster it ", customer="Andere AG")
    demand = second["suggestion"]["demand"]
    assert demand["similar_requests"] == 1
    assert demand["partners"] == 1  # same partner, written differently
    assert demand["customers"] == 2
    assert second["suggestion"]["outcome"] == "decline_limited_use"
    intake(client, "Ein Tetris-Spiel auf dem Telefon für unseren Chef, bitte!", partner="Acme")
    third = intake(client, NARROW, partner="Beta Telecom")
    demand = third["suggestion"]["demand"]
    assert demand["partners"] >= 3 and demand["broad"] is True
    assert third["suggestion"]["outcome"] == "needs_review"
    assert demand["outcome_before"] == "decline_limited_use"
    assert "broad_demand" in third["suggestion"]["flags"]
    assert "verschiedenen Partnern" in third["suggestion"]["rationale"]  # German request
    assert third["suggestion"]["labels"] == first["suggestion"]["labels"]  # labels untouched
    stored = client.get(f"/v1/requests/{third['id']}", headers=AUTH).json()
    earlier = {link["id"] for link in stored["earlier_similar"]}
    assert {first["id"], second["id"]} <= earlier
    assert stored["demand"] == demand
    assert stored["outcome"] == "needs_review"
    back = client.get(f"/v1/requests/{first['id']}", headers=AUTH).json()
    assert third["id"] in {link["id"] for link in back["later_similar"]}


@on_both_backends
def test_the_same_wish_in_the_other_language_is_one_demand(client: TestClient) -> None:
    """Words hardly match across languages; the model's concept space links the two."""
    german, english = CROSS_LANGUAGE_PAIR
    first = intake(client, german, partner="Muster IT")
    second = intake(client, english, partner="Acme UK")
    demand = second["suggestion"]["demand"]
    assert demand["similar_requests"] == 1 and demand["partners"] == 2
    (link,) = demand["similar"]
    assert link["id"] == first["id"] and link["cross_language"] is True
    link_similarity = client.get("/v1/model").json()["concepts"]["link_similarity"]
    assert demand["cross_language_threshold"] == link_similarity
    assert link["similarity"] >= link_similarity
    stored = client.get(f"/v1/requests/{second['id']}", headers=AUTH).json()
    assert stored["earlier_similar"] == [
        {"id": first["id"], "similarity": link["similarity"], "lang": "de", "cross_language": True}
    ]
    back = client.get(f"/v1/requests/{first['id']}", headers=AUTH).json()
    assert [(x["id"], x["lang"], x["cross_language"]) for x in back["later_similar"]] == [
        (second["id"], "en", True)
    ]


def test_unrelated_requests_are_not_linked(client: TestClient) -> None:
    intake(client, NARROW, partner="A")
    other = intake(client, SECURITY, partner="B")
    assert other["suggestion"]["demand"]["similar_requests"] == 0
    assert other["suggestion"]["demand"]["partners"] == 1


def test_demand_never_changes_a_security_fix(make_client: Callable[..., TestClient]) -> None:
    client = make_client(demand_min_partners=2)
    intake(client, SECURITY, partner="A")
    second = intake(client, SECURITY, partner="B")
    assert second["suggestion"]["demand"]["broad"] is True
    assert second["suggestion"]["outcome"] == "security_fix"
    assert second["suggestion"]["demand"]["outcome_before"] is None
    assert "2 verschiedenen Partnern" in second["suggestion"]["rationale"]


def test_threshold_is_configurable(make_client: Callable[..., TestClient]) -> None:
    strict = make_client(demand_similarity=0.999)
    intake(strict, NARROW, partner="A")
    near = intake(strict, NARROW + " Bitte bald.", partner="B")
    assert near["suggestion"]["demand"]["similar_requests"] == 0


def test_suggest_alone_reports_no_demand(client: TestClient) -> None:
    intake(client, NARROW, partner="A")
    assert client.post("/v1/suggest", json={"text": NARROW}).json()["demand"] is None


@on_both_backends
def test_an_intake_reads_its_text_once(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once for the suggestion and the near-duplicates both, and not again at the next one."""
    client = make_client(demand_min_partners=2)
    first = intake(client, NARROW, partner="A")
    intake(client, SECURITY, partner="B")
    read: list[str] = []
    analyze = predictor.analyze

    def counted(text: str, *args: object, **kwargs: object) -> object:
        read.append(text)
        return analyze(text, *args, **kwargs)

    monkeypatch.setattr(predictor, "analyze", counted)
    twin = intake(client, NARROW + "!", partner="C", title="Tetris")
    assert read == ["Tetris\n\n" + NARROW + "!"]
    # What it answers is what the suggestion and the index each found on their own.
    demand = twin["suggestion"]["demand"]
    assert [s["id"] for s in demand["similar"]] == [first["id"]]
    assert demand["partners"] == 2 and demand["broad"] is True
    alone = client.post("/v1/suggest", json={"text": NARROW + "!", "title": "Tetris"}).json()
    suggestion = twin["suggestion"]
    assert demand["outcome_before"] == alone["outcome"] == "decline_limited_use"
    assert suggestion["rationale"].startswith(alone["rationale"])
    assert {
        **suggestion,
        "demand": None,
        "outcome": alone["outcome"],
        "rationale": alone["rationale"],
    } == {**alone, "flags": [*alone["flags"], "broad_demand"]}
    read.clear()
    intake(client, SECURITY + "!", partner="D")
    assert read == [SECURITY + "!"]


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize(
    "outcome", ["decline_limited_use", "partner_configures", "security_fix", "needs_review"]
)
def test_demand_applied_can_be_taken_back(language: str, outcome: str) -> None:
    suggestion = {
        "language": language,
        "outcome": outcome,
        "rationale": "Der Grund.",
        "flags": ["uncertain"],
        "demand": None,
    }
    demand = {"similar_requests": 4, "partners": 3, "broad": True, "outcome_before": None}
    applied = apply_demand(suggestion, dict(demand))
    assert applied != suggestion
    assert without_demand(applied) == suggestion
    narrow = apply_demand(suggestion, {**demand, "partners": 1, "broad": False})
    assert without_demand(narrow) == suggestion


def test_a_recount_of_a_request_stored_before_cross_language_links() -> None:
    # Stored before 98f675e: no cross_language flags nor their threshold.
    old = {"similar_requests": 1, "partners": 2, "customers": 0, "broad": False}
    old |= {"min_partners": 3, "similarity_threshold": 0.5}
    old["similar"] = [{"id": 1, "similarity": 0.7}]
    request = {
        "partner": "B",
        "customer": None,
        "lang": "de",
        "demand": old,
        "suggestion": {"language": "de", "outcome": "decline_limited_use", "rationale": "x"},
    }
    linked = [{"id": 2, "similarity": 0.6, "partner": "C", "customer": None, "lang": "en"}]
    demand = recount(request, linked)["demand"]
    assert (demand["similar_requests"], demand["partners"], demand["broad"]) == (1, 2, False)
    assert demand["similar"] == [{"id": 2, "similarity": 0.6, "cross_language": True}]
    assert demand["cross_language_threshold"] is None
    assert recount({**request, "demand": {}}, linked) is None  # an erased one: nothing
