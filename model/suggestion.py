"""Typed results of a suggestion: what the service returns and analysts inspect."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES: tuple[str, ...] = (
    "security_fix",
    "partner_configures",
    "prioritize_broad_value",
    "decline_limited_use",
    "needs_review",
)


def _fields(flat: object) -> dict[str, Any]:
    """A flat dataclass as a dict: ``asdict`` deep-copies and costs ten times as much."""
    return dict(vars(flat))


@dataclass(frozen=True)
class Evidence:
    """Words of the input that moved a label's score; ``text == input[start:end]``.

    A word or phrase said more than once is one item: ``start``/``end`` are its first place,
    ``weight`` is what all its places contribute together.
    """

    text: str
    start: int
    end: int
    weight: float  # contribution to the label's logit: > 0 argues for the label, < 0 against


@dataclass(frozen=True)
class Ignored:
    """A part of the input the model did not read; ``reason`` says why.

    ``"frame"``: a greeting, sign-off, signature, legal footer, template heading or log
    (``model.boilerplate``); ``"denial"``: a statement that the request is not about security.
    """

    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    threshold: float
    decision: bool
    uncertain: bool
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class SimilarRequest:
    id: str
    text: str
    labels: list[str]
    lang: str
    similarity: float  # cosine by words and characters, or in the concept space if cross_language
    # The same wish asked in the other language, found in the German–English concept space.
    cross_language: bool = False


@dataclass(frozen=True)
class Suggestion:
    """A triage suggestion for one feature request, with its reasons and provenance."""

    language: str
    labels: list[str]
    scores: dict[str, float]
    per_label: list[LabelScore]
    outcome: str
    rationale: str
    uncertain_labels: list[str]
    similar: list[SimilarRequest]
    max_similarity: float | None  # best similarity among ``similar``; None when not explained
    topic_similarity: float  # best similarity in words (not character n-grams); low: novel
    flags: list[str]
    model_version: str
    thresholds: dict[str, float]
    uncertainty_band: float
    ignored: list[Ignored] = field(default_factory=list)  # in text order; empty unexplained

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_record(self, record_id: object) -> dict[str, Any]:
        """The line ``triage predict`` prints for one input record."""
        return {
            "id": record_id,
            "language": self.language,
            "labels": self.labels,
            "scores": self.scores,
            "outcome": self.outcome,
            "rationale": self.rationale,
            "explanation": {
                "per_label": {
                    ls.label: {
                        "score": ls.score,
                        "threshold": ls.threshold,
                        "decision": ls.decision,
                        "uncertain": ls.uncertain,
                        "evidence": [_fields(e) for e in ls.evidence],
                    }
                    for ls in self.per_label
                },
                "similar": [_fields(s) for s in self.similar],
                "max_similarity": self.max_similarity,
                "topic_similarity": self.topic_similarity,
                "ignored": [_fields(i) for i in self.ignored],
            },
            "uncertain_labels": self.uncertain_labels,
            "flags": self.flags,
            "model_version": self.model_version,
            "thresholds": self.thresholds,
        }


def reviewed_sample_id(request_id: int | str) -> str:
    """The id under which a reviewed inbox request is trained on, and so shown as similar."""
    return f"review-{request_id}"


def reviewed_request_id(sample_id: str) -> int | None:
    """The inbox request a similar past request is (``reviewed_sample_id``'s inverse), if any."""
    _, _, number = sample_id.rpartition("-")
    if not (number.isascii() and number.isdigit()):
        return None
    request_id = int(number)
    return request_id if reviewed_sample_id(request_id) == sample_id else None
