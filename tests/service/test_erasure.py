"""Erasure of a stored request: nothing it said is left, anywhere the service keeps it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from postgres_testing import on_both_backends
from service_testing import AUTH
from test_inbox import NARROW, SECURITY, intake
from test_suggest import assert_problem

from model import reviewed_sample_id
from service.demand import recount
from service.store import Store, feature_requests, metadata

# Made-up words that occur nowhere else, so finding one anywhere means a copy survived.
TEXT = "Unser Zwiebelkuchenwerk-Q7X braucht eine Warteschleife mit Ansage für die Kantine"
FIELDS = {
    "title": "Kantine-Titel-Q7X",
    "partner": "Partner-Q7X GmbH",
    "customer": "Kunde-Q7X AG",
    "source": "formular-Q7X",
}
COMMENT = "Rückruf bei Frau Q7X-Kommentar"


def _everything_stored(client: TestClient) -> str:
    """Every row of every table of the service's database, as one text."""
    engine = client.app.state.triage.store.engine
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in conn.execute(table.select())
        )


@on_both_backends
def test_erasure_leaves_a_tombstone_and_nothing_the_request_said(client: TestClient) -> None:
    erased = intake(client, TEXT, **FIELDS)
    path = f"/v1/requests/{erased['id']}"
    review = client.post(
        f"{path}/review",
        json={"labels": ["msp_configurable"], "comment": COMMENT, "reviewer": "Q7X-Prüferin"},
        headers=AUTH,
    )
    assert review.status_code == 201
    twin = intake(client, TEXT.replace("-Q7X", ""), partner="Andere IT")  # a near-duplicate
    kept = intake(client, SECURITY)
    assert {link["id"] for link in client.get(path, headers=AUTH).json()["later_similar"]} == {
        twin["id"]
    }
    assert "Q7X" in _everything_stored(client)

    response = client.delete(path, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == erased["id"] and body["status"] == "erased"
    assert (body["reviews_removed"], body["links_removed"]) == (1, 1)

    stored = _everything_stored(client)
    assert not [line for line in stored.splitlines() if "Q7X" in line], stored
    assert "Rückruf" not in stored
    assert_problem(client.get(path, headers=AUTH), 410, "request-erased")
    gone = client.post(f"{path}/review", json={"labels": [], "reviewer": "jd"}, headers=AUTH)
    assert_problem(gone, 410, "request-erased")
    assert_problem(client.delete(path, headers=AUTH), 410, "request-erased")
    listed = client.get("/v1/requests", headers=AUTH)
    assert [r["id"] for r in listed.json()] == [kept["id"], twin["id"]]
    assert listed.headers["x-total-count"] == "2"
    assert client.get("/v1/reviews/export", headers=AUTH).text == ""
    assert client.get(f"/v1/requests/{twin['id']}", headers=AUTH).json()["earlier_similar"] == []


@on_both_backends
def test_later_requests_stop_counting_an_erased_one_in_their_demand(
    make_client: Callable[..., TestClient],
) -> None:
    # Stored after it, they counted it (and its partner and customer) at their intake; with
    # two partners broad demand, one of them only because of it.
    client = make_client(demand_min_partners=2, blind_review_share=0.0)
    erased = intake(client, NARROW, partner="Erste IT", customer="Kunde-Q7X AG")
    broad = intake(client, NARROW + "!", partner="Zweite IT", customer="Andere AG")
    reviewed = intake(client, NARROW + "?", partner="zweite it")
    for before in (broad, reviewed):
        demand = before["suggestion"]["demand"]
        assert erased["id"] in [s["id"] for s in demand["similar"]]
        assert (demand["partners"], demand["broad"]) == (2, True)
        assert before["suggestion"]["outcome"] == "needs_review"
    review = {"labels": ["broad_value"], "reviewer": "jd"}
    response = client.post(f"/v1/requests/{reviewed['id']}/review", json=review, headers=AUTH)
    assert response.status_code == 201, response.text
    decided = response.json()["outcome"]
    assert decided != "decline_limited_use"

    answer = client.delete(f"/v1/requests/{erased['id']}", headers=AUTH).json()

    def stored(request_id: int) -> dict:
        return client.get(f"/v1/requests/{request_id}", headers=AUTH).json()

    listed = {row["id"]: row for row in client.get("/v1/requests", headers=AUTH).json()}
    # As if it had never been stored: what the model says alone, and no broad demand.
    now = stored(broad["id"])
    demand = now["demand"]
    assert (demand["similar_requests"], demand["partners"], demand["customers"]) == (0, 1, 1)
    assert (demand["broad"], demand["similar"], demand["outcome_before"]) == (False, [], None)
    alone = client.post("/v1/suggest", json={"text": NARROW + "!"}).json()
    assert alone["outcome"] == "decline_limited_use"
    assert now["suggestion"] == {**alone, "demand": demand}
    assert (now["suggested_outcome"], now["outcome"]) == ("decline_limited_use",) * 2
    assert listed[broad["id"]]["demand"] == demand
    assert listed[broad["id"]]["outcome"] == "decline_limited_use"
    # Reviewed: counted again too; the outcome stays the reviewer's.
    now = stored(reviewed["id"])
    demand = now["demand"]
    assert [s["id"] for s in demand["similar"]] == [broad["id"]]
    assert (demand["similar_requests"], demand["partners"], demand["customers"]) == (1, 1, 1)
    assert demand["broad"] is False and now["suggestion"]["demand"] == demand
    assert "broad_demand" not in now["suggestion"]["flags"]
    assert (now["suggested_outcome"], now["outcome"]) == ("decline_limited_use", decided)
    assert answer["demand_recounted"] == 2
    # The next intake counts as the stored ones do.
    later = intake(client, NARROW + ".", partner="Dritte IT")["suggestion"]["demand"]
    assert (later["similar_requests"], later["partners"], later["broad"]) == (2, 2, True)


@on_both_backends
def test_demand_left_counting_an_erased_request_is_counted_again_at_start(
    make_client: Callable[..., TestClient],
) -> None:
    # Erasures before the recount left later requests counting the erased one: the next
    # start finds them (more counted than links left) and counts them again.
    client, store, erased, later = _broad_only_through_the_first(make_client)
    untouched = intake(client, SECURITY, partner="Dritte IT")
    store.erase_request(erased["id"], recount=lambda request, linked: None)  # as it was,
    _write_row(store, erased["id"], demand_recounted=None)  # leaving its tombstone unmarked
    assert store.get_request(later["id"])["demand"]["partners"] == 2

    restarted = make_client(demand_min_partners=2, blind_review_share=0.0)
    now = restarted.get(f"/v1/requests/{later['id']}", headers=AUTH).json()
    assert (now["demand"]["similar_requests"], now["demand"]["partners"]) == (0, 1)
    assert (now["suggested_outcome"], now["outcome"]) == ("decline_limited_use",) * 2
    kept = restarted.get(f"/v1/requests/{untouched['id']}", headers=AUTH).json()
    assert kept["suggestion"] == untouched["suggestion"]
    assert restarted.app.state.triage.store.recount_stale_demand(recount) == 0  # all done


def _broad_only_through_the_first(
    make_client: Callable[..., TestClient],
) -> tuple[TestClient, Store, dict[str, Any], dict[str, Any]]:
    """A service and two stored near-duplicates from two partners: with two partners needed
    for broad demand, the later one is broad only through the first."""
    client = make_client(demand_min_partners=2, blind_review_share=0.0)
    first = intake(client, NARROW, partner="Erste IT")
    later = intake(client, NARROW + "!", partner="Zweite IT")
    assert later["suggestion"]["outcome"] == "needs_review"
    return client, client.app.state.triage.store, first, later


def _write_row(store: Store, request_id: int, **values: Any) -> None:
    """Change a stored request's row behind the service's back."""
    with store.engine.begin() as conn:
        conn.execute(
            feature_requests.update().where(feature_requests.c.id == request_id).values(**values)
        )


@on_both_backends
def test_the_start_counts_demand_again_once_per_erasure_that_did_not(
    make_client: Callable[..., TestClient],
) -> None:
    # Once the tombstones of old erasures are dealt with, a start reads no demand: a demand
    # made stale behind the service's back (here by hand) is not looked for again, and an
    # erasure of this version needs no repair. A tombstone left unmarked again (by an older
    # version of the service, say) is repaired at the next start.
    client, store, first, later = _broad_only_through_the_first(make_client)
    assert client.delete(f"/v1/requests/{first['id']}", headers=AUTH).status_code == 200
    second = intake(client, NARROW + "?", partner="Dritte IT")
    store.erase_request(second["id"], recount=lambda request, linked: None)
    assert store.stale_demand() == []  # the second erasure linked nothing later: nothing stale
    stale = {**store.get_request(later["id"])["demand"], "similar_requests": 5}
    _write_row(store, later["id"], demand=json.dumps(stale))
    assert store.stale_demand() == [later["id"]]
    assert store.recount_stale_demand(recount) == 0  # every tombstone is marked: not read
    assert store.stale_demand() == [later["id"]]

    _write_row(store, second["id"], demand_recounted=None)  # as an older version leaves it
    assert store.recount_stale_demand(recount) == 1
    assert store.stale_demand() == []
    demand = store.get_request(later["id"])["demand"]
    assert (demand["similar_requests"], demand["partners"]) == (0, 1)


@on_both_backends
def test_an_erased_id_is_never_given_out_again(client: TestClient) -> None:
    newest = intake(client, NARROW)  # SQLite reuses the highest rowid once its row is deleted
    assert client.delete(f"/v1/requests/{newest['id']}", headers=AUTH).status_code == 200
    assert intake(client, NARROW)["id"] == newest["id"] + 1


def test_erasure_overwrites_the_text_in_the_sqlite_files(client: TestClient) -> None:
    # Rows on either side, in both tables: without secure_delete SQLite would leave the
    # bytes of an erased row in the page, merely marked free.
    created = [intake(client, NARROW), intake(client, TEXT, **FIELDS), intake(client, SECURITY)]
    for request, comment in zip(created, ["erster", COMMENT, "dritter"], strict=True):
        client.post(
            f"/v1/requests/{request['id']}/review",
            json={"labels": [], "comment": comment, "reviewer": "jd"},
            headers=AUTH,
        )
    database = Path(client.app.state.triage.store.engine.url.database)
    files = [database, database.with_name(database.name + "-wal")]

    def raw() -> bytes:
        return b"".join(f.read_bytes() for f in files if f.exists())

    assert b"Q7X" in raw()  # written where the check below looks
    assert client.delete(f"/v1/requests/{created[1]['id']}", headers=AUTH).status_code == 200
    assert b"Q7X" not in raw()
    assert b"Zwiebelkuchen" not in raw()


def test_missing_and_out_of_range_ids(client: TestClient) -> None:
    assert_problem(client.delete("/v1/requests/999", headers=AUTH), 404, "request-not-found")
    assert client.delete("/v1/requests/0", headers=AUTH).status_code == 422
    assert_problem(client.delete("/v1/requests/1"), 401, "api-key-missing")


def test_another_worker_stops_linking_to_an_erased_request(
    make_client: Callable[..., TestClient],
) -> None:
    """Two apps on one database stand for two workers; each keeps its own index in memory."""
    eraser, other = make_client(), make_client()
    first = intake(other, NARROW, partner="Erste IT")
    intake(other, SECURITY)  # ``other`` has read ``first`` into its near-duplicate index
    assert eraser.delete(f"/v1/requests/{first['id']}", headers=AUTH).status_code == 200
    twin = intake(other, NARROW + "!", partner="Zweite IT")
    assert twin["suggestion"]["demand"]["similar_requests"] == 0
    assert twin["suggestion"]["demand"]["partners"] == 1


def _pose_as_trained_on(client: TestClient, request_id: int, text: str) -> str:
    """Rename the training request most similar to ``text`` in the app's model to the id a
    model trained on the review of ``request_id`` would give it; returns that id."""
    model = client.app.state.triage.holder.model
    nearest = model.suggest(text).similar[0].id
    ids = model.estimator.index.ids
    ref = reviewed_sample_id(request_id)
    ids[ids.index(nearest)] = ref
    return ref


def test_a_model_trained_on_an_erased_request_stops_showing_it(
    make_client: Callable[..., TestClient],
) -> None:
    eraser, other = make_client(), make_client(reload_interval=0.05)
    query = "Wir brauchen eine andere Wartemusik für die Hotline-Warteschleife"
    created = intake(eraser, TEXT, **FIELDS)
    refs = {
        _pose_as_trained_on(app, created["id"], query) for app in (eraser, other)
    }  # as if the nightly retraining had already learnt from its review
    (ref,) = refs
    holder = intake(eraser, query)  # stores a suggestion that shows the request as similar
    assert ref in [s["id"] for s in holder["suggestion"]["similar"]]

    answer = eraser.delete(f"/v1/requests/{created['id']}", headers=AUTH).json()
    assert answer["suggestions_scrubbed"] == 1
    stored = eraser.get(f"/v1/requests/{holder['id']}", headers=AUTH).json()
    assert ref not in [s["id"] for s in stored["suggestion"]["similar"]]
    assert stored["suggestion"]["similar"]  # the other similar requests stay

    def shown(app: TestClient) -> list[str]:
        single = app.post("/v1/suggest", json={"text": query}).json()["similar"]
        batch = app.post("/v1/suggest/batch", json={"items": [{"text": query}]}).json()
        return [s["id"] for s in single + batch[0]["similar"]]

    assert ref not in shown(eraser)  # at once in the worker that erased it
    deadline = time.monotonic() + 10
    while ref in shown(other) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ref not in shown(other)  # within the polling interval in every other one


@on_both_backends
def test_a_request_erased_before_an_intake_commits_gets_no_link_from_it(
    database_url: str,
) -> None:
    # The intake found its near-duplicates first, then the erasure committed, then the intake
    # stored its links: a link to the erased request would outlive the erasure.
    from test_ops import _record

    from service.store import Store

    store = Store(database_url)
    store.migrate()
    try:
        erased, kept = (store.add_request(_record(i), [], "v")[0] for i in (1, 2))
        store.erase_request(erased, recount=recount)
        new, _ = store.add_request(_record(3), [(erased, 0.9), (kept, 0.8)], "v")
        assert [link[0] for link in store.get_request(new)["earlier_similar"]] == [kept]
    finally:
        store.close()


class _Race:
    """A request erased while an intake that refers to it is under way, and that intake.

    The model is made to show the erased request as a similar past request (as if trained on
    its review); as a near-duplicate (``first`` is ``NARROW``) it is counted too: three
    near-duplicates from three partners are broad demand (the default minimum), which would
    turn the third's decline into a review. With it erased, the intake must count two
    partners, show it nowhere, and keep the decline.
    """

    query = NARROW + "?"

    def __init__(self, client: TestClient, first: str) -> None:
        self.client = client
        self.erased = intake(client, first, partner="Erste IT")
        self.kept = intake(client, NARROW + "!", partner="Zweite IT")
        self.ref = _pose_as_trained_on(client, self.erased["id"], self.query)

    def erase(self) -> None:
        path = f"/v1/requests/{self.erased['id']}"
        assert self.client.delete(path, headers=AUTH).status_code == 200

    def intake(self) -> dict:
        return intake(self.client, self.query, partner="Dritte IT")

    def check(self, new: dict) -> None:
        suggestion = new["suggestion"]
        demand = suggestion["demand"]
        assert [s["id"] for s in demand["similar"]] == [self.kept["id"]]
        assert (demand["similar_requests"], demand["partners"], demand["broad"]) == (1, 2, False)
        assert suggestion["outcome"] == "decline_limited_use"
        assert "broad_demand" not in suggestion["flags"]
        assert self.ref not in [s["id"] for s in suggestion["similar"]]
        assert suggestion["similar"]  # the other similar requests stay
        stored = self.client.get(f"/v1/requests/{new['id']}", headers=AUTH).json()
        assert stored["suggestion"] == suggestion and stored["demand"] == demand
        assert stored["outcome"] == "decline_limited_use"
        assert [link["id"] for link in stored["earlier_similar"]] == [self.kept["id"]]
        assert self.ref not in json.dumps(stored)


# The erased request as a near-duplicate and similar past request, or as the latter only.
_FIRST = pytest.mark.parametrize("first", [NARROW, TEXT], ids=["near-duplicate", "shown"])


@on_both_backends
@_FIRST
def test_a_request_erased_after_an_intake_found_it_is_not_counted_nor_shown(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    # The intake found its near-duplicates and similar requests, then the erasure committed
    # (in another worker), then the intake stored what it had found.
    race = _Race(client, first)
    index = client.app.state.triage.demand
    search = index.neighbours

    def then_erase(*args: Any) -> Any:
        found = search(*args)
        client.app.state.triage.store.erase_request(race.erased["id"], recount=recount)
        return found

    monkeypatch.setattr(index, "neighbours", then_erase)
    race.check(race.intake())


@on_both_backends
@_FIRST
def test_an_intake_during_an_erasure_waits_for_it(client: TestClient, first: str) -> None:
    # The erasure has scrubbed the suggestions stored so far but not committed when the
    # intake, which found the request before it, comes to store what it found.
    race = _Race(client, first)
    engine = client.app.state.triage.store.engine
    scrubbed, resume = threading.Event(), threading.Event()

    def pause(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "suggestion LIKE" in statement:  # the erasure's look for copies of its text
            scrubbed.set()
            resume.wait(timeout=30)

    sa.event.listen(engine, "after_cursor_execute", pause)
    try:
        with ThreadPoolExecutor(2) as pool:
            erasing = pool.submit(race.erase)
            assert scrubbed.wait(timeout=30)
            storing = pool.submit(race.intake)
            time.sleep(1.0)  # as far as the intake gets while the erasure is under way
            resume.set()
            erasing.result()
            new = storing.result()
    finally:
        resume.set()
        sa.event.remove(engine, "after_cursor_execute", pause)
    race.check(new)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_store_reads_committed_whatever_the_server_default(database_url: str) -> None:
    # Intakes and erasures order themselves by an advisory lock and then look again (see
    # Store.add_request): that needs each statement to see what committed while it waited,
    # which a server set to REPEATABLE READ would not give.
    from service.store import create_db_engine

    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = sa.engine.make_url(database_url).database
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"
            )
        )
    admin.dispose()
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "read committed"
    finally:
        engine.dispose()
