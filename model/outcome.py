"""The labeling guide's outcome rules and a one-sentence rationale in the request's language."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from model.suggestion import Evidence, LabelScore

# Flags that make any automatic outcome untrustworthy, whatever the scores say.
REVIEW_FLAGS = ("empty_text", "too_short", "unsupported_language", "novel")


@dataclass(frozen=True)
class OutcomeDecision:
    outcome: str
    rationale: str


def _terms(evidence: list[Evidence], n: int = 3) -> str:
    positive = [e.text for e in evidence if e.weight > 0][:n]
    return ", ".join(f"'{t}'" for t in positive)


def _reason(label: LabelScore) -> str:
    terms = _terms(label.evidence)
    if not terms:
        return f"{label.score:.2f}"
    return f"{terms}; {label.score:.2f}"


_TEXTS = {
    "en": {
        "empty_text": "The request has no text to judge; a reviewer should look at it.",
        "too_short": (
            "The request has at most one word to read; too little to judge, a reviewer should "
            "look at it."
        ),
        "unsupported_language": (
            "The request is in neither German nor English, so the model cannot judge it."
        ),
        "novel": (
            "The request is unlike every past request (best similarity {sim:.2f}), so the "
            "scores are not to be trusted; a reviewer should decide."
        ),
        "uncertain": (
            "Not sure about {labels} (score close to the threshold); a reviewer should decide."
        ),
        "security_fix": ("Security risk ({reason}): it must be fixed, whatever else applies."),
        "partner_configures": (
            "The partner can deliver this with existing configuration ({reason}); low vendor "
            "priority."
        ),
        "partner_default": " Consider making it a product default.",
        "prioritize_broad_value": (
            "A product change that saves many customers time or money ({reason}); high priority."
        ),
        "decline_limited_use": (
            "No label applies (highest score {top} {score:.2f}): a narrow wish, better declined "
            "early and kindly."
        ),
    },
    "de": {
        "empty_text": "Die Anfrage enthält keinen Text; bitte manuell prüfen.",
        "too_short": (
            "Die Anfrage hat höchstens ein lesbares Wort; zu wenig für ein Urteil, bitte "
            "manuell prüfen."
        ),
        "unsupported_language": (
            "Die Anfrage ist weder deutsch noch englisch; das Modell kann sie nicht beurteilen."
        ),
        "novel": (
            "Die Anfrage ähnelt keiner bisherigen (beste Ähnlichkeit {sim:.2f}); den Scores ist "
            "nicht zu trauen, bitte manuell entscheiden."
        ),
        "uncertain": (
            "Unsicher bei {labels} (Score nahe am Schwellwert); bitte manuell entscheiden."
        ),
        "security_fix": (
            "Sicherheitsrisiko ({reason}): muss behoben werden, egal was sonst zutrifft."
        ),
        "partner_configures": (
            "Der Partner kann das mit vorhandener Konfiguration umsetzen ({reason}); niedrige "
            "Priorität beim Hersteller."
        ),
        "partner_default": " Als Produkt-Standard erwägen.",
        "prioritize_broad_value": (
            "Produktänderung, die vielen Kunden Zeit oder Geld spart ({reason}); hohe Priorität."
        ),
        "decline_limited_use": (
            "Kein Label trifft zu (höchster Score {top} {score:.2f}): ein enger Wunsch, besser "
            "früh und freundlich absagen."
        ),
    },
}


def outcome_for_labels(labels: Collection[str]) -> str:
    """The outcome the guide's rules 1–4 give decided labels (a reviewer's, say)."""
    if "security" in labels:
        return "security_fix"
    if "msp_configurable" in labels:
        return "partner_configures"
    if "broad_value" in labels:
        return "prioritize_broad_value"
    return "decline_limited_use"


def decide_outcome(
    per_label: list[LabelScore], lang: str, flags: list[str], max_similarity: float
) -> OutcomeDecision:
    """Apply the guide's rules in order: review flags, security, partner, broad value, decline.

    A confident ``security`` decision wins even when another label is uncertain, because
    the outcome "security fix" holds whatever the other labels turn out to be.
    """
    texts = _TEXTS["de" if lang == "de" else "en"]
    by_label = {ls.label: ls for ls in per_label}
    for flag in REVIEW_FLAGS:
        if flag in flags:
            return OutcomeDecision("needs_review", texts[flag].format(sim=max_similarity))
    security = by_label.get("security")
    if security and security.decision and not security.uncertain:
        return OutcomeDecision(
            "security_fix", texts["security_fix"].format(reason=_reason(security))
        )
    uncertain = [ls.label for ls in per_label if ls.uncertain]
    if uncertain:
        return OutcomeDecision(
            "needs_review", texts["uncertain"].format(labels=", ".join(uncertain))
        )
    # Nothing is uncertain and security is not decided: the rules' order is the reviewers'.
    decided = {ls.label for ls in per_label if ls.decision}
    outcome = outcome_for_labels(decided)
    if outcome == "partner_configures":
        rationale = texts[outcome].format(reason=_reason(by_label["msp_configurable"]))
        if "broad_value" in decided:
            rationale += texts["partner_default"]
    elif outcome == "prioritize_broad_value":
        rationale = texts[outcome].format(reason=_reason(by_label["broad_value"]))
    else:
        top = max(per_label, key=lambda ls: ls.score)
        rationale = texts[outcome].format(top=top.label, score=top.score)
    return OutcomeDecision(outcome, rationale)
