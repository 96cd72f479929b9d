"""Conversion of ``model`` results into the API's plain dicts (validated by ``schemas``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from model import Suggestion


def _locate(start: int, end: int, title: str | None) -> tuple[str, int, int]:
    """Offsets into the composed text → ``(field, start, end)`` within title or text."""
    if not title:
        return "text", start, end
    prefix = len(title) + 2  # compose() joins with a blank line
    if start < len(title):
        return "title", start, min(end, len(title))
    return "text", max(start - prefix, 0), max(end - prefix, 0)


def suggestion_out(
    suggestion: Suggestion, title: str | None = None, hidden: Collection[str] = ()
) -> dict[str, Any]:
    """The API shape of one suggestion; evidence offsets point into ``title`` or ``text``.

    Similar past requests whose ids are in ``hidden`` (erased from the inbox) are left out.
    """

    def span(start: int, end: int, **fields: Any) -> dict[str, Any]:
        """``field``, then ``fields`` (evidence puts its ``text`` here), then the offsets."""
        where, s, e = _locate(start, end, title)
        return {"field": where, **fields, "start": s, "end": e}

    return {
        "model_version": suggestion.model_version,
        "language": suggestion.language,
        "labels": list(suggestion.labels),
        "scores": dict(suggestion.scores),
        "per_label": [
            {
                "label": ls.label,
                "score": ls.score,
                "threshold": ls.threshold,
                "decision": ls.decision,
                "uncertain": ls.uncertain,
                "evidence": [
                    {**span(e.start, e.end, text=e.text), "weight": e.weight} for e in ls.evidence
                ],
            }
            for ls in suggestion.per_label
        ],
        "outcome": suggestion.outcome,
        "rationale": suggestion.rationale,
        "uncertain_labels": list(suggestion.uncertain_labels),
        "flags": list(suggestion.flags),
        "similar": [
            {
                "id": s.id,
                "text": s.text,
                "labels": list(s.labels),
                "lang": s.lang,
                "similarity": s.similarity,
                "cross_language": s.cross_language,
            }
            for s in suggestion.similar
            if s.id not in hidden
        ],
        "max_similarity": suggestion.max_similarity,
        "thresholds": dict(suggestion.thresholds),
        "uncertainty_band": suggestion.uncertainty_band,
        "ignored": [{**span(i.start, i.end), "reason": i.reason} for i in suggestion.ignored],
        "demand": None,
    }


def margin(suggestion: Suggestion) -> float:
    """Distance of the closest score to its threshold: small means uncertain."""
    return min((abs(ls.score - ls.threshold) for ls in suggestion.per_label), default=1.0)
