"""Request and response bodies of the API. Bodies end in ``In``/``Out``; nested parts are nouns.

Length limits that depend on configuration (``TRIAGE_MAX_TEXT_CHARS``,
``TRIAGE_BATCH_LIMIT``) are checked in the routes, so that they answer with their own
problem type (413) rather than a generic validation error.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)

Outcome = Literal[
    "security_fix",
    "partner_configures",
    "prioritize_broad_value",
    "decline_limited_use",
    "needs_review",
]
Status = Literal["pending", "reviewed"]
Label = Literal["msp_configurable", "security", "broad_value"]  # model.estimator.LABELS
Language = Literal["de", "en", "other"]  # what model.text.detect_lang tells

# Stored strings may not hold NUL characters: PostgreSQL's text type cannot store them, and an
# answer must not depend on the backend (SQLite would take them), so both refuse with a 422.
NO_NUL = r"^[^\x00]*$"
# Who reviewed, or what a stored request says: something besides blanks, and no NUL.
NAMED = r"^[^\x00]*[^\x00\s][^\x00]*$"
# A name is one line: no control characters at all (a newline or a terminal escape in a
# reviewer's name would forge lines in whatever lists reviews), and something besides blanks.
# Nor the characters that change text direction (U+202A–U+202E, U+2066–U+2069): a name with
# U+202E would show the rest of a line about the review reversed.
_NOT_IN_NAME = "\\x00-\\x1f\\x7f-\\x9f\u202a-\u202e\u2066-\u2069"
ONE_LINE_NAME = f"^[^{_NOT_IN_NAME}]*[^{_NOT_IN_NAME}\\s][^{_NOT_IN_NAME}]*$"
# What each pattern asks, in words: a 422 says this instead of the regular expression.
PATTERN_MEANINGS = {
    NO_NUL: "must not hold a NUL character (\\u0000)",
    NAMED: "must hold something besides blanks, and no NUL character (\\u0000)",
    ONE_LINE_NAME: (
        "must be one line with something besides blanks: no line breaks, tabs, control "
        "characters or characters that change text direction (U+202A-U+202E, U+2066-U+2069)"
    ),
}
# Characters that show nothing although Unicode does not class them as blanks.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
# How far ahead of the service's clock an intake's received_at may be (clocks drift).
RECEIVED_AHEAD = timedelta(minutes=15)


def _visible(value: str) -> str:
    """Refuse text that shows nothing: blanks, zero-width and format characters (U+200B,
    U+FEFF, the soft hyphen), control characters and blank "letters" such as U+2800."""
    if not any(
        not ch.isspace()
        and unicodedata.category(ch) not in ("Cc", "Cf", "Zs", "Zl", "Zp")
        and ch not in _INVISIBLE_LETTERS
        for ch in value
    ):
        raise ValueError("holds nothing visible (only blanks, invisible or control characters)")
    return value


# Stored text people must be able to read: refused when it shows nothing.
Visible = Annotated[str, AfterValidator(_visible)]
# A field the API does not know is refused (422 naming it), not dropped: a client that sends
# "titel" or "reviwer" learns of it instead of losing what it meant to store.
_INPUT = ConfigDict(extra="forbid")


# --- suggestions ---------------------------------------------------------------------------


class SuggestIn(BaseModel):
    model_config = _INPUT

    text: str = Field(min_length=1, description="The feature request, German or English.")
    title: str | None = Field(default=None, max_length=300)


class BatchItemIn(SuggestIn):
    # Strict: true or 1.0 would come back as 1, and the echo would no longer match.
    id: StrictStr | StrictInt | None = Field(
        default=None, description="Echoed back to match answers."
    )


class BatchIn(BaseModel):
    model_config = _INPUT

    items: list[BatchItemIn] = Field(description="At most TRIAGE_BATCH_LIMIT (1,000) items.")


class Evidence(BaseModel):
    field: Literal["title", "text"]
    text: str = Field(description="Equals the submitted field's characters [start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    weight: float = Field(description="Contribution to the label's logit; > 0 argues for it.")


class LabelScore(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    decision: bool
    uncertain: bool
    evidence: list[Evidence]


class IgnoredPart(BaseModel):
    field: Literal["title", "text"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    reason: Literal["frame", "denial"] = Field(
        description="frame: greeting, sign-off, signature, legal footer, template heading or "
        "log; denial: a statement that the request is not about security."
    )


class SimilarPast(BaseModel):
    id: str
    text: str
    labels: list[str]
    lang: str
    similarity: float = Field(
        description="Cosine by words and characters; for a cross-language one, the cosine in "
        "the model's German–English concept space."
    )
    cross_language: bool = Field(
        default=False,
        description="The same wish asked in the other language of German and English, found "
        "in the concept space (at most two, after those found by words).",
    )


class SimilarStored(BaseModel):
    id: int
    similarity: float
    cross_language: bool = Field(
        default=False,
        description="The two are in different languages; the similarity is then the one that "
        "linked them: by words and characters, or (German and English) in the model's "
        "German–English concept space.",
    )


class Demand(BaseModel):
    similar_requests: int = Field(ge=0, description="Earlier stored near-duplicates.")
    partners: int = Field(ge=0, description="Distinct partners, this request included.")
    customers: int = Field(ge=0, description="Distinct customers, this request included.")
    broad: bool = Field(description="partners >= min_partners.")
    min_partners: int
    similarity_threshold: float
    cross_language_threshold: float | None = Field(
        default=None,
        description="Cosine in the model's German–English concept space from which a request "
        "in the other language is linked; null when the model has no such space.",
    )
    similar: list[SimilarStored] = Field(description="Up to 10, most similar first.")
    outcome_before: Outcome | None = Field(
        default=None, description="The model's outcome when the demand changed it."
    )


class SuggestionOut(BaseModel):
    model_version: str
    language: str = Field(description="de, en, or another detected language (then flagged).")
    labels: list[str]
    scores: dict[str, float]
    per_label: list[LabelScore]
    outcome: Outcome
    rationale: str
    uncertain_labels: list[str]
    flags: list[str]
    similar: list[SimilarPast] = Field(description="Similar training requests.")
    max_similarity: float
    thresholds: dict[str, float]
    uncertainty_band: float
    ignored: list[IgnoredPart] = Field(
        default=[], description="Parts of the input the model left unread, in text order."
    )
    demand: Demand | None = Field(
        default=None, description="Only for stored requests (the inbox); null for /v1/suggest."
    )


class BatchItemOut(SuggestionOut):
    id: str | int | None = None


# --- inbox ---------------------------------------------------------------------------------


class FeatureRequestIn(BaseModel):
    model_config = _INPUT

    # A stored request of blanks could never be triaged; a suggestion of one says empty_text.
    text: Visible = Field(min_length=1, pattern=NAMED)
    title: str | None = Field(default=None, max_length=300, pattern=NO_NUL)
    partner: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    customer: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    source: str | None = Field(
        default=None, max_length=100, pattern=NO_NUL, description="e.g. 'form', 'mail'"
    )
    received_at: datetime | None = Field(
        default=None,
        description="When the request arrived, as ISO 8601 text (default: now); naive means "
        "UTC. At most 15 minutes ahead of the service's clock.",
    )

    @field_validator("received_at", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        """ISO 8601 text only: pydantic would read 1700000000 (or "1700000000") as seconds
        since 1970, which no intake form means."""
        if value is None:
            return None
        if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "").isdigit():
            raise ValueError("expected a time as ISO 8601 text, e.g. 2025-01-14T10:30:00Z")
        return value

    @field_validator("received_at")
    @classmethod
    def _in_utc_range(cls, value: datetime | None) -> datetime | None:
        """A time whose UTC falls outside years 1–9999 cannot be stored (0001-01-01 at +14:00),
        and one in the future would head the newest-first inbox for good."""
        if value is None:
            return None
        try:
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise ValueError("outside the years 1 to 9999 once converted to UTC") from None
        if value > datetime.now(UTC) + RECEIVED_AHEAD:
            raise ValueError(
                f"{value.isoformat()} is in the future; at most "
                f"{RECEIVED_AHEAD.seconds // 60} minutes ahead of the service's clock are taken"
            )
        return value


class ReviewIn(BaseModel):
    model_config = _INPUT

    labels: list[str] = Field(
        max_length=20, description="The labels that apply, each once; may be empty."
    )
    outcome: Outcome | None = Field(
        default=None,
        description="The decided outcome; if left out, the one the guide's rules give the "
        "labels (security → security_fix, msp_configurable → partner_configures, broad_value "
        "→ prioritize_broad_value, none → decline_limited_use).",
    )
    comment: str | None = Field(default=None, max_length=5_000, pattern=NO_NUL)
    reviewer: Visible = Field(min_length=1, max_length=200, pattern=ONE_LINE_NAME)
    blind: StrictBool = Field(
        default=False,
        description="True when the reviewer decided without seeing the suggestion. A review of "
        "a request whose suggestion is withheld for blind review is recorded as blind anyway.",
    )

    @field_validator("labels")
    @classmethod
    def _each_once(cls, labels: list[str]) -> list[str]:
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:  # as `triage train` refuses a sample that lists a label twice
            raise ValueError(f"{', '.join(map(repr, twice))} listed more than once")
        return labels

    @field_validator("outcome")
    @classmethod
    def _agrees_with_security(cls, outcome: str | None, info: ValidationInfo) -> str | None:
        """The guide's rules a decision may not break: a security request is always fixed
        (security_fix, whatever else applies), security_fix is for security requests only, and
        needs_review is the model's "not sure", not a decision. Other outcomes may differ from
        what the labels give: that is the reviewer's call."""
        labels = info.data.get("labels")
        if outcome is None or labels is None:
            return outcome
        if outcome == "needs_review":
            raise ValueError(
                "needs_review is the model's 'not sure', not a decision: decide the labels, "
                "and leave outcome out or give the outcome decided"
            )
        if "security" in labels and outcome != "security_fix":
            raise ValueError(
                f"a request labelled security is always security_fix (the guide's first "
                f"rule), not {outcome}"
            )
        if outcome == "security_fix" and "security" not in labels:
            raise ValueError(
                "security_fix is the outcome of a security request: add the label security, "
                "or give another outcome"
            )
        return outcome


class ReviewOut(BaseModel):
    id: int
    request_id: int
    labels: list[str]
    outcome: Outcome | None
    comment: str | None
    reviewer: str
    blind: bool
    labels_agreed: bool = Field(description="The labels equal the suggested labels.")
    outcome_agreed: bool | None = Field(
        description="Whether the review's outcome is the suggested one (null in reviews stored "
        "before outcomes were derived from the labels)."
    )
    created_at: str


class ErasureOut(BaseModel):
    id: int
    status: Literal["erased"]
    erased_at: str
    reviews_removed: int = Field(description="Reviews deleted with it, comments included.")
    links_removed: int = Field(description="Near-duplicate links to and from it, deleted.")
    demand_recounted: int = Field(
        description="Later requests whose stored demand counted it (and its partner and "
        "customer), counted again without it; an outcome that only it made broad demand is "
        "the model's again."
    )
    suggestions_scrubbed: int = Field(
        description="Other requests' stored suggestions that showed its text as a similar past "
        "request (of a model trained on its review), with that entry cut out."
    )


class Link(BaseModel):
    id: int
    similarity: float
    lang: str = Field(description="The linked request's language.")
    cross_language: bool = Field(description="Its language differs from this request's.")


class RequestCreatedOut(BaseModel):
    id: int
    status: Status
    received_at: str
    model_version: str
    suggestion: SuggestionOut


_WITHHELD = " Null while a blind review is pending."


class RequestSummaryOut(BaseModel):
    id: int
    received_at: str
    title: str | None
    text: str
    partner: str | None
    customer: str | None
    source: str | None
    lang: str
    status: Status
    labels: list[str] | None = Field(
        description="Reviewed labels, else the suggested ones." + _WITHHELD
    )
    outcome: Outcome | None = Field(
        description="The reviewed outcome once reviewed, else the suggested one." + _WITHHELD
    )
    suggested_labels: list[str] | None = Field(description="At intake." + _WITHHELD)
    suggested_outcome: Outcome | None = Field(description="At intake." + _WITHHELD)
    margin: float | None = Field(
        description="Closest score's distance to its threshold." + _WITHHELD
    )
    model_version: str
    demand: Demand | None = Field(description="At intake." + _WITHHELD)
    blind_review: bool = Field(
        description="Chosen at intake (TRIAGE_BLIND_REVIEW_SHARE): until its first review, "
        "nothing derived from the suggestion is shown, and the label and outcome filters "
        "never match it."
    )


class RequestOut(RequestSummaryOut):
    stored_at: str
    suggestion: SuggestionOut | None = Field(description="At intake." + _WITHHELD)
    review: ReviewOut | None = Field(description="The current review.")
    reviews: list[ReviewOut] = Field(description="Every review, oldest first.")
    earlier_similar: list[Link] | None = Field(
        description="Near-duplicates among earlier requests." + _WITHHELD
    )
    later_similar: list[Link] | None = Field(
        description="Later requests that link to this one." + _WITHHELD
    )


# --- model, health -------------------------------------------------------------------------


class ModelOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: str | None
    trained_at: str | None
    labels: list[str]
    thresholds: dict[str, float]
    uncertainty_band: float
    metrics: dict[str, Any]
    concepts: dict[str, Any] | None = Field(
        description="The German–English concept space that links requests across languages: "
        "its link similarity and, cross-validated on the training translations, the share of "
        "translations it links, finds as the nearest, and of different requests it links. "
        "Null for a model without one."
    )
    data: dict[str, Any] = Field(description="Training and evaluation data summary.")
    config: dict[str, Any]
    code: dict[str, Any]
    libs: dict[str, Any]
    loaded_at: str | None
    registry_current: str | None = Field(description="What the registry's CURRENT names now.")
    reloading: bool
    last_reload_at: str | None
    last_reload_error: str | None = Field(description="Why the last reload was refused.")


class ReloadOut(BaseModel):
    status: Literal["started", "loaded", "unchanged", "failed"]
    version: str | None
    last_reload_error: str | None


class AliveOut(BaseModel):
    status: Literal["ok"]


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    model_version: str | None = None
    database: bool | None = None


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every 4xx and 5xx."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


# --- OpenAPI examples, German and English --------------------------------------------------

SUGGEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "de-security": {
        "summary": "Deutsch: Sicherheit",
        "value": {"text": "Bitte 2FA für das Admin-Portal", "title": "Zwei-Faktor-Anmeldung"},
    },
    "de-configurable": {
        "summary": "Deutsch: per Konfiguration lösbar",
        "value": {"text": "Kunde möchte eine andere Wartemusik für die Hotline-Queue."},
    },
    "en-broad-value": {
        "summary": "English: broad value",
        "value": {"text": "A native HubSpot integration would save all our customers time."},
    },
    "en-limited": {
        "summary": "English: narrow wish",
        "value": {"text": "Pink desk phones for one customer's office, purely cosmetic."},
    },
}

BATCH_EXAMPLES: dict[str, dict[str, Any]] = {
    "de-en": {
        "summary": "Deutsch und English gemischt",
        "value": {
            "items": [
                {"id": "a1", "text": "Bitte 2FA für das Admin-Portal"},
                {"id": "a2", "text": "How do I set up holiday routing for the hotline?"},
            ]
        },
    }
}

REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "de-form": {
        "summary": "Deutsch: aus dem Anfrageformular",
        "value": {
            "title": "CSV-Export der Anrufberichte",
            "text": "Viele unserer Kunden möchten die Anrufberichte als CSV exportieren, "
            "das spart jede Woche Stunden.",
            "partner": "Muster IT GmbH",
            "customer": "Bäckerei Groß",
            "source": "form",
        },
    },
    "en-form": {
        "summary": "English: from the request form",
        "value": {
            "title": "Session timeout",
            "text": "Our client's auditor requires admin sessions to expire after 15 minutes.",
            "partner": "Acme Telecom Ltd",
            "customer": "Northwind Insurance",
            "source": "form",
            "received_at": "2025-01-14T10:30:00Z",
        },
    },
}

REVIEW_EXAMPLES: dict[str, dict[str, Any]] = {
    "de-agree": {
        "summary": "Deutsch: Vorschlag bestätigt",
        "value": {
            "labels": ["security"],
            "outcome": "security_fix",
            "reviewer": "jd",
            "comment": "Passt, Pentest-Befund.",
        },
    },
    "en-correct": {
        "summary": "English: corrected, decided blind",
        "value": {
            "labels": ["msp_configurable", "security"],
            "outcome": "partner_configures",
            "reviewer": "ak",
            "comment": "A tenant setting exists.",
            "blind": True,
        },
    },
}
