"""The demand index grows in blocks as requests come in, and answers as if it held one matrix."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from model import TriageModel
from service.demand import DemandIndex

EVAL = Path(__file__).resolve().parents[2] / "data" / "samples" / "eval.jsonl"
TWINS = [
    "Bitte 2FA für das Admin-Portal, Passwörter allein reichen nicht",
    "Please 2FA for the admin portal, passwords alone are not enough",
    "Bitte 2FA für das Admin-Portal, Passwörter allein reichen nicht!",
]


class Rows:
    """What ``DemandIndex`` reads of the store: requests after an id, oldest first."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.uncommitted: set[int] = set()  # ids taken, rows not yet visible (PostgreSQL)

    def add(self, text: str) -> int:
        n = len(self.rows) + 1
        self.rows.append(
            {"id": n, "title": None, "text": text, "partner": f"p{n % 5}", "customer": None}
        )
        return n

    def requests_after(self, last_id: int, limit: int = 5000) -> list[dict[str, Any]]:
        visible = [r for r in self.rows if r["id"] not in self.uncommitted]
        return [r for r in visible if r["id"] > last_id][:limit]

    def requests_among(self, ids: list[int]) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["id"] in ids and r["id"] not in self.uncommitted]


class NoErasures:
    ids: frozenset[int] = frozenset()

    def refresh(self) -> None:
        return None


def test_blocks_halve_and_answer_like_one_matrix(trained_model: TriageModel) -> None:
    texts = [json.loads(line)["text"] for line in EVAL.read_text(encoding="utf-8").splitlines()]
    texts = texts[:45] + TWINS + texts[45:60]
    store = Rows()
    growing = DemandIndex(store, NoErasures(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    for text in texts:  # as at intake: compare, then store
        growing.neighbours(trained_model, text)
        store.add(text)
    growing.neighbours(trained_model, texts[0])  # catches up with the last one stored
    sizes = [block.lexical.shape[0] for block in growing._blocks]
    assert sum(sizes) == len(texts)
    assert all(a >= 2 * b for a, b in itertools.pairwise(sizes)), sizes
    assert len(sizes) <= math.log2(len(texts)) + 1
    whole = DemandIndex(store, NoErasures(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    for query in (*TWINS, texts[3]):
        found = growing.neighbours(trained_model, query)
        assert found == whole.neighbours(trained_model, query)
    twins = growing.neighbours(trained_model, TWINS[0])
    assert {n.id for n in twins} >= {46, 47, 48}  # the twins' ids: linked, across languages too
    assert [n.cross_language for n in twins if n.id == 47] == [True]


def test_a_request_that_commits_after_a_later_one_is_still_found(
    trained_model: TriageModel,
) -> None:
    # On PostgreSQL ids come from a sequence: an intake may take id 1, another take id 2 and
    # commit first, and a third intake read id 2 before id 1 is there. Catching up by
    # "ids after the last one read" alone would skip id 1 in this worker for good.
    store = Rows()
    index = DemandIndex(store, NoErasures(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    slow = store.add(TWINS[0])
    store.uncommitted.add(slow)
    fast = store.add(TWINS[2])
    assert [n.id for n in index.neighbours(trained_model, TWINS[0])] == [fast]
    store.uncommitted.discard(slow)  # it commits now
    assert sorted(n.id for n in index.neighbours(trained_model, TWINS[0])) == [slow, fast]
    assert not index._gaps


def test_an_erased_request_is_not_asked_for_again_at_every_intake(
    trained_model: TriageModel,
) -> None:
    store = Rows()
    erased = store.add(TWINS[0])
    store.uncommitted.add(erased)  # as the store reads it: not there, and never again
    store.add(TWINS[2])
    asked: list[list[int]] = []
    among = store.requests_among
    store.requests_among = lambda ids: asked.append(ids) or among(ids)  # type: ignore[method-assign]

    class Erased(NoErasures):
        ids = frozenset({erased})

    index = DemandIndex(store, Erased(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    index.neighbours(trained_model, TWINS[0])
    index.neighbours(trained_model, TWINS[1])
    assert asked == [] and not index._gaps


def test_one_reading_gives_the_suggestion_and_the_comparable_of_two(
    trained_model: TriageModel,
) -> None:
    texts = [
        *TWINS,
        "How do I set up holiday routing for the hotline of our customer?",
        "Ein Tetris-Spiel auf dem Telefon für den Chef, Spaß muss sein",
        "Hola, necesitamos una cola de espera",  # neither German nor English
        "   ",
    ]
    for explain in (True, False):
        suggestions, found = trained_model.suggest_and_compare(texts, explain=explain)
        assert suggestions == trained_model.suggest_many(texts, explain=explain)
        apart = trained_model.comparable(texts)
        assert (found.lexical != apart.lexical).nnz == 0
        assert found.concepts is not None and apart.concepts is not None
        assert np.array_equal(found.concepts, apart.concepts)
        assert found.langs == apart.langs


def test_a_request_remembered_at_intake_is_found_as_if_read_from_the_store(
    trained_model: TriageModel,
) -> None:
    store = Rows()
    remembering = DemandIndex(store, NoErasures(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    reading = DemandIndex(store, NoErasures(), threshold=0.5, min_partners=3)  # type: ignore[arg-type]
    read: list[int] = []
    after = store.requests_after

    def requests_after(last_id: int, limit: int = 5000) -> list[dict[str, Any]]:
        rows = after(last_id, limit)
        read.extend(row["id"] for row in rows)
        return rows

    store.requests_after = requests_after  # type: ignore[method-assign]
    for text in TWINS:  # as at intake: compare, store, remember
        _, query = trained_model.suggest_and_compare([text])
        remembering.neighbours(trained_model, query)
        request_id = store.add(text)
        remembering.remember(trained_model, request_id, query, f"p{request_id % 5}", None)
    assert read == []  # no stored request was read back
    for text in (*TWINS, "Please add CSV export to call reports"):
        assert remembering.neighbours(trained_model, text) == reading.neighbours(
            trained_model, text
        )
    # Not the next id (another worker stored one meanwhile): left to the catch-up.
    other = store.add("Please add CSV export to call reports")
    late = store.add(TWINS[0])
    remembering.remember(trained_model, late, trained_model.comparable([TWINS[0]]), None, None)
    assert remembering._ids[-1] == len(TWINS)
    found = remembering.neighbours(trained_model, TWINS[0])
    assert found == reading.neighbours(trained_model, TWINS[0])
    assert {other, late} <= set(remembering._ids)
