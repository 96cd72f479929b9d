"""Demand signal: near-duplicates among earlier stored requests, and who asked.

One text cannot show that a wish is wanted widely; many partners asking for the same thing
can. Each stored request is compared (cosine similarity of ``TriageModel.vectors``: words and
character n-grams) with every earlier stored request; those at or above
``TRIAGE_DEMAND_SIMILARITY`` (default 0.5) are its near-duplicates and are linked in the store.
Words rarely match across languages, so a German and an English request are also compared in
the model's German–English concept space (``model.concepts``), and linked at its
``link_similarity`` (0.6 by default, set in training): the same wish from a German- and an
English-speaking partner is one demand, not two. Such links are marked ``cross_language``.

Counts reported in ``demand``:
- ``similar_requests``: earlier near-duplicates;
- ``partners`` / ``customers``: distinct non-empty names among the request itself and its
  earlier near-duplicates (compared case-insensitively, trimmed).

How it changes the suggestion, when ``partners >= TRIAGE_DEMAND_MIN_PARTNERS`` (default 3),
i.e. the demand is *broad*:
- ``decline_limited_use`` becomes ``needs_review``: the text looks narrow, but several
  partners asking for it is evidence of ``broad_value``; a person should decide rather than
  the service declining something many want. ``demand.outcome_before`` keeps the model's
  outcome.
- every other outcome stays (``security_fix`` and ``needs_review`` already lead to a person;
  ``prioritize_broad_value`` is confirmed; ``partner_configures`` stays, since the partner can
  still do it, and the rationale suggests a product default or documentation).
- labels are never changed: they are the model's reading of the text. The rationale gets one
  sentence naming the counts, in the request's language, and ``flags`` gets ``broad_demand``.

The index lives in each worker's memory and catches up from the store (``id`` above the last
seen) before every intake, so workers and instances sharing one database see each other's
requests; an erased request (``service.erasure``) is never a near-duplicate again. A request
the worker stored itself is added from its intake's reading (``remember``), not read again.
Vectors of different model versions are not comparable: a model swap rebuilds it.

The counts are stored with each request (its ``demand`` and its suggestion), so an erasure
counts again (``recount``) every later request that was linked to the erased one: from the
links left, as if it had never been stored, with the rules above applied anew (a decline that
only its partner made broad is a decline again). Everything else stored stays.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import TriageModel
from model.links import Comparable, links
from service.erasure import Erasures
from service.store import Store

logger = logging.getLogger(__name__)


def compose(title: str | None, text: str) -> str:
    """The text the model sees: title, a blank line, then the text."""
    return f"{title}\n\n{text}" if title else text


def name_key(value: str | None) -> str | None:
    """A partner's or customer's name as names are compared; None if empty: compatibility
    forms and combining marks composed (NFKC: "Mu\u0308ller" as typed on a Mac is "Müller"),
    case-folded, invisible format characters (zero-width space, soft hyphen) dropped, and
    blanks (a non-breaking space too) trimmed and run together. Else one partner spelling its
    name two ways would count as two partners asking, and tip a request into broad demand."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value or "").casefold())
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split()) or None


@dataclass(frozen=True)
class Neighbour:
    id: int
    similarity: float
    partner: str | None
    customer: str | None
    cross_language: bool = False


# How far below the last id read a missing id is still looked for: an intake that commits
# more than this many ids late is not linked by this worker until it restarts.
_GAP_WINDOW = 1000


class DemandIndex:
    """Vectors of all stored requests for one model version, caught up from the store."""

    def __init__(
        self, store: Store, erasures: Erasures, threshold: float, min_partners: int
    ) -> None:
        self.store = store
        self.erasures = erasures
        self.threshold = threshold
        self.min_partners = min_partners
        self._lock = threading.Lock()
        self._version: str | None = None
        self._last_id = 0
        # Vectors in blocks, each at least twice the rows of the next: appending a request
        # copies no more than the small blocks it merges with, not every stored row (a
        # vstack of all 22,000 rows cost 92 ms an intake, more than comparing with them).
        self._blocks: list[Comparable] = []
        self._link_similarity: float | None = None
        self._ids: list[int] = []
        self._partners: list[str | None] = []
        self._customers: list[str | None] = []
        # Ids below the last one read that were not there yet (see _catch_up), looked for again.
        self._gaps: set[int] = set()

    def _append(self, found: Comparable) -> None:
        self._blocks.append(found)
        while len(self._blocks) > 1 and self._blocks[-2].n_texts < 2 * self._blocks[-1].n_texts:
            last = self._blocks.pop()
            self._blocks[-1] = self._blocks[-1].stacked(last)

    def _catch_up(self, model: TriageModel) -> None:
        if model.version != self._version:
            self._version, self._last_id, self._blocks = model.version, 0, []
            self._link_similarity = model.concept_link_similarity
            self._ids, self._partners, self._customers = [], [], []
            self._gaps = set()
        while True:
            rows = self.store.requests_after(self._last_id)
            if not rows:
                break
            self._add(model, rows)
            ids = [int(r["id"]) for r in rows]
            # Ids skipped on the way: on PostgreSQL an intake that took its id earlier may
            # commit after a later one was read here. (Rolled-back ids stay gaps.)
            expected = self._last_id + 1
            for found in ids:
                self._gaps.update(range(max(expected, found - _GAP_WINDOW), found))
                expected = found + 1
            self._last_id = ids[-1]
        # An erased request is a gap too (it is not read) that will never fill: left in, it
        # would be asked for again at every intake.
        erased = self.erasures.ids
        self._gaps = {
            gap for gap in self._gaps if gap > self._last_id - _GAP_WINDOW and gap not in erased
        }
        if self._gaps:
            late = self.store.requests_among(sorted(self._gaps))
            if late:
                self._add(model, late)
                self._gaps.difference_update(int(r["id"]) for r in late)

    def _add(self, model: TriageModel, rows: list[dict[str, Any]]) -> None:
        self._append(model.comparable([compose(r["title"], r["text"]) for r in rows]))
        self._ids.extend(int(r["id"]) for r in rows)
        self._partners.extend(name_key(r["partner"]) for r in rows)
        self._customers.extend(name_key(r["customer"]) for r in rows)

    def neighbours(self, model: TriageModel, query: str | Comparable) -> list[Neighbour]:
        """Stored requests a text is a near-duplicate of (``model.links``), most similar first.

        ``query``: the text, or ``model.comparable`` of it (one text) if the caller has it.
        """
        self.erasures.refresh()
        erased = self.erasures.ids
        with self._lock:
            self._catch_up(model)
            if not self._blocks:
                return []
            if isinstance(query, str):
                query = model.comparable([query])
            found = [links(query, b, self.threshold, self._link_similarity) for b in self._blocks]
            linked = np.concatenate([f.linked[0] for f in found])
            similarity = np.concatenate([f.similarity[0] for f in found])
            cross_language = np.concatenate([f.cross_language[0] for f in found])
            hits = [
                (int(i), float(similarity[i]))
                for i in np.flatnonzero(linked)
                if self._ids[i] not in erased
            ]
            hits.sort(key=lambda h: -h[1])
            return [
                Neighbour(
                    self._ids[i],
                    round(s, 4),
                    self._partners[i],
                    self._customers[i],
                    bool(cross_language[i]),
                )
                for i, s in hits
            ]

    def remember(
        self,
        model: TriageModel,
        request_id: int,
        query: Comparable,
        partner: str | None,
        customer: str | None,
    ) -> None:
        """Add a request this worker has just stored (``query``: ``model.comparable`` of its
        text), so the next catch-up does not read it again. Only if it is the next id the
        catch-up would read, for the same model version; else that reads it as any other."""
        with self._lock:
            if model.version != self._version or request_id != self._last_id + 1:
                return
            self._append(query)
            self._ids.append(request_id)
            self._partners.append(name_key(partner))
            self._customers.append(name_key(customer))
            self._last_id = request_id

    def demand(
        self, neighbours: list[Neighbour], partner: str | None, customer: str | None
    ) -> dict[str, Any]:
        return count_demand(
            neighbours, partner, customer, self.min_partners, self.threshold, self._link_similarity
        )


def count_demand(
    neighbours: list[Neighbour],
    partner: str | None,
    customer: str | None,
    min_partners: int,
    threshold: float,
    link_similarity: float | None,
) -> dict[str, Any]:
    """The ``demand`` of a request from its near-duplicates (most similar first)."""
    partners = {n.partner for n in neighbours} | {name_key(partner)}
    customers = {n.customer for n in neighbours} | {name_key(customer)}
    partners.discard(None)
    customers.discard(None)
    return {
        "similar_requests": len(neighbours),
        "partners": len(partners),
        "customers": len(customers),
        "broad": len(partners) >= min_partners,
        "min_partners": min_partners,
        "similarity_threshold": threshold,
        "cross_language_threshold": link_similarity,
        "similar": [
            {"id": n.id, "similarity": n.similarity, "cross_language": n.cross_language}
            for n in neighbours[:10]
        ],
        "outcome_before": None,
    }


def recount(request: dict[str, Any], linked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A stored request's ``demand`` and ``suggestion`` counted again from the near-duplicates
    it is linked to now (``linked``: their ``id``, ``similarity``, ``partner``, ``customer``
    and ``lang``), with the thresholds it was counted with at intake; None if it has none.

    ``Store.erase_request`` calls it for the requests that were linked to the erased one.
    """
    before, suggestion = request["demand"], request["suggestion"]
    if not before or not suggestion:
        return None
    # Rows stored before cross-language links (98f675e) have no flags nor their threshold.
    flagged = {
        entry["id"]: entry["cross_language"]
        for entry in before.get("similar", [])
        if "cross_language" in entry
    }
    neighbours = sorted(
        (
            Neighbour(
                int(link["id"]),
                float(link["similarity"]),
                name_key(link["partner"]),
                name_key(link["customer"]),
                flagged.get(int(link["id"]), link["lang"] != request["lang"]),
            )
            for link in linked
        ),
        key=lambda n: (-n.similarity, n.id),
    )
    demand = count_demand(
        neighbours,
        request["partner"],
        request["customer"],
        before["min_partners"],
        before["similarity_threshold"],
        before.get("cross_language_threshold"),
    )
    return {"demand": demand, "suggestion": apply_demand(without_demand(suggestion), demand)}


_NOTES = {
    "en": {
        "decline": (
            " But {n} similar requests came from {p} different partners: that is evidence of "
            "broad value the text alone does not show, so a reviewer should decide."
        ),
        "partner": (
            " {n} similar requests from {p} different partners: consider a product default or "
            "better documentation."
        ),
        "other": " {n} similar requests came from {p} different partners.",
    },
    "de": {
        "decline": (
            " Aber {n} ähnliche Anfragen kamen von {p} verschiedenen Partnern: ein Hinweis auf "
            "breiten Nutzen, den der Text allein nicht zeigt; bitte manuell entscheiden."
        ),
        "partner": (
            " {n} ähnliche Anfragen von {p} verschiedenen Partnern: Produkt-Standard oder "
            "bessere Dokumentation erwägen."
        ),
        "other": " {n} ähnliche Anfragen kamen von {p} verschiedenen Partnern.",
    },
}


def _demand_note(suggestion: dict[str, Any], demand: dict[str, Any]) -> str:
    """The sentence ``apply_demand`` adds to the rationale of ``suggestion`` (its outcome as
    the model gave it) for broad ``demand``; ``without_demand`` cuts the same one off."""
    notes = _NOTES["de" if suggestion.get("language") == "de" else "en"]
    kind = {"decline_limited_use": "decline", "partner_configures": "partner"}
    note = notes[kind.get(suggestion["outcome"], "other")]
    return note.format(n=demand["similar_requests"], p=demand["partners"])


def without_demand(suggestion: dict[str, Any]) -> dict[str, Any]:
    """A suggestion made by ``apply_demand`` as it was before: the model's outcome,
    rationale and flags, and no ``demand``."""
    out = dict(suggestion)
    demand = out.get("demand") or {}
    out["demand"] = None
    if not demand.get("broad"):
        return out
    if demand.get("outcome_before") == "decline_limited_use":
        out["outcome"] = demand["outcome_before"]
    note = _demand_note(out, demand)
    if out["rationale"].endswith(note):
        out["rationale"] = out["rationale"][: -len(note)]
    flags = list(out.get("flags", []))
    if flags and flags[-1] == "broad_demand":  # appended by apply_demand
        flags.pop()
    out["flags"] = flags
    return out


def apply_demand(suggestion: dict[str, Any], demand: dict[str, Any]) -> dict[str, Any]:
    """The suggestion (as the API returns it) with the demand rules of this module applied."""
    out = dict(suggestion)
    out["demand"] = demand
    if not demand["broad"]:
        return out
    out["rationale"] = out["rationale"] + _demand_note(out, demand)
    if out["outcome"] == "decline_limited_use":
        demand["outcome_before"] = out["outcome"]
        out["outcome"] = "needs_review"
    out["flags"] = [*out.get("flags", []), "broad_demand"]
    return out
