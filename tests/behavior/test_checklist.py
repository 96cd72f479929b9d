"""Behaviour tests in the style of CheckList: capabilities, invariances, translations.

The cases are written fresh for these tests (not copied from the sample data), so they probe
whether the model learnt the ideas rather than the training sentences. As in CheckList, a
capability measured on a pool of cases is a failure rate with a bar, and the failing cases are
listed: a retrained model moves a few cases near a threshold either way, and a per-case
assertion would then only say that, while a bar on the rate says whether the capability held.
Rule-like behaviour (negation, invariance to case and typos) is still asserted case by case.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from model import TriageModel
from tests.conftest import SAMPLES
from training.data import load_samples, translation_pairs


def labels_of(model: TriageModel, text: str) -> set[str]:
    return set(model.suggest(text, explain=False).labels)


# ------------------------------------------------------------ minimum functionality

MFT = [
    # security, by keyword and by meaning
    ("security", "Bitte 2FA für das Admin-Portal"),
    ("security", "the intern who left in May can still listen to our voicemails"),
    ("security", "Der ehemalige Azubi kann sich immer noch in die App einloggen und Chats lesen"),
    ("security", "Someone made 3,000 euros of calls to premium numbers in Gambia last weekend"),
    ("security", "Aufnahmen sind über den Link ohne Anmeldung für jeden abrufbar"),
    ("security", "Provisioning server sends SIP passwords in plain text over HTTP"),
    # partner can configure it
    ("msp_configurable", "Kunde möchte, dass an Feiertagen automatisch eine Ansage läuft"),
    ("msp_configurable", "How do we route calls to the mobile of the on-call tech after 6pm?"),
    (
        "msp_configurable",
        "Können wir die Funktionstasten auf den Telefonen der Praxis anders belegen?",
    ),
    ("msp_configurable", "Customer wants different hold music for the sales queue"),
    # broad value product change
    ("broad_value", "Bitte eine native Integration mit Pipedrive, viele unserer Kunden nutzen das"),
    (
        "broad_value",
        "Bulk edit of users via CSV in the admin portal would save every partner hours",
    ),
    (
        "broad_value",
        "Transkription von Voicemails als Text in der E-Mail, wäre für alle Kunden super",
    ),
    ("broad_value", "Please add a callback option in queues so callers don't wait on hold"),
]


NARROW = [
    "Kann das Telefon des Chefs beim Klingeln in Pink blinken? Nur für ihn.",
    "Our CEO wants a Tetris game on his desk phone for the lunch break",
    "Unterstützung für ein ISDN-Faxgerät von 1994, das nur ein Kunde noch hat",
    "Just one client wants the Windows 95 startup sound when the softphone starts",
]

# Bars: 90 % overall and 85 % per category (28-30 cases each, one case is 3-4 %). A model that
# lost a capability (the meaning of "leaver", or of "hold music") fails whole groups of cases.
MIN_PASS_OVERALL = 0.90
MIN_PASS_PER_CATEGORY = 0.85


def _pooled_cases() -> list[tuple[str, str]]:
    """(expected category, text): the cases above and the clear-cut cases of checklist.jsonl."""
    cases = [*MFT, *(("none", text) for text in NARROW)]
    with (SAMPLES / "checklist.jsonl").open(encoding="utf-8") as handle:
        cases += [(c["expect"], c["text"]) for c in map(json.loads, handle)]
    return cases


def test_minimum_functionality(trained_model: TriageModel) -> None:
    """Each clear-cut case gets its label; a narrow wish gets none."""
    passed: dict[str, list[bool]] = defaultdict(list)
    failures = []
    for expected, text in _pooled_cases():
        labels = labels_of(trained_model, text)
        ok = not labels if expected == "none" else expected in labels
        passed[expected].append(ok)
        if not ok:
            failures.append(f"{expected}: {sorted(labels)} for {text!r}")
    rates = {category: sum(oks) / len(oks) for category, oks in passed.items()}
    overall = sum(sum(oks) for oks in passed.values()) / sum(map(len, passed.values()))
    report = f"pass rates {rates}, overall {overall:.3f}; failing:\n" + "\n".join(failures)
    assert set(rates) == {"security", "msp_configurable", "broad_value", "none"}
    assert overall >= MIN_PASS_OVERALL, report
    assert min(rates.values()) >= MIN_PASS_PER_CATEGORY, report


# ------------------------------------------------------------ negation

NEGATED = [
    "no security issue, we only want another ringtone",
    "Kein Sicherheitsthema – der Kunde möchte nur einen anderen Klingelton",
    "This has nothing to do with security: just change the logo on the phone display",
]


@pytest.mark.parametrize("text", NEGATED, ids=["en", "de", "en-nothing-to-do"])
def test_negation_is_not_evidence(trained_model: TriageModel, text: str) -> None:
    assert "security" not in labels_of(trained_model, text)


# ------------------------------------------------------------ invariance

INVARIANT = [
    ("Bitte 2FA für das Admin-Portal", "BITTE 2FA FÜR DAS ADMIN-PORTAL!!!"),
    ("Bitte 2FA für das Admin-Portal", "bitte 2fa für das admin portal"),
    (
        "Customer wants different hold music for the sales queue",
        "customer wants diffrent hold musik for the sales queue.",
    ),
    (
        "How do we route calls to the mobile of the on-call tech after 6pm?",
        "how do we rout calls to the mobil of the on call tech after 6 pm",
    ),
    (
        "Bitte eine native Integration mit Pipedrive, viele unserer Kunden nutzen das",
        "Bitte eine native Integation mit Pipedrive - viele unserer Kunden nutzen das!",
    ),
    (
        "the intern who left in May can still listen to our voicemails",
        "The intern who left in May can still listen to our voicemails.",
    ),
    (
        "Der ehemalige Azubi kann sich immer noch in die App einloggen und Chats lesen",
        "der ehemalige azubi kann sich imer noch in die app einlogen und chats lesen",
    ),
]


@pytest.mark.parametrize(("a", "b"), INVARIANT, ids=[f"inv-{i}" for i in range(len(INVARIANT))])
def test_labels_stable_under_case_punctuation_and_typos(
    trained_model: TriageModel, a: str, b: str
) -> None:
    assert labels_of(trained_model, a) == labels_of(trained_model, b)


# ------------------------------------------------------------ framing

# How requests reach the vendor: in mails with greetings, signatures and legal footers, in
# issue templates, with a log pasted below. None of that frame is the request.
FRAMES = {
    "mail-de": (
        "Hallo Herr Maier,\n\n{}\n\nMit freundlichen Grüßen\n\nSabine Krämer\nTeamleitung IT\n"
        "Krämer & Partner Steuerberatung mbB\nTel. +49 89 123456-0\n\nKrämer & Partner mbB | "
        "Sitz: München | Registergericht München PR 1234\nDiese E-Mail enthält vertrauliche "
        "Informationen und ist ausschließlich für den Adressaten bestimmt. Sollten Sie diese\n"
        "E-Mail irrtümlich erhalten haben, benachrichtigen Sie bitte sofort den Absender."
    ),
    "mail-en": (
        "Hi all,\n\n{}\n\nKind regards,\nTom\n--\nTom Whitfield | Head of IT | Harbour Freight\n"
        "Registered office: 4 Quay Street, Bristol. Company number 01234567.\nThe information "
        "in this email is confidential and may be legally privileged. It is intended solely "
        "for the addressee.\n\nSent from Outlook for Android"
    ),
    "issue-template": (
        "**Is your feature request related to a problem? Please describe.**\n{}\n\n"
        "**Describe the solution you'd like**\nA clear and concise description of what you "
        "want to happen.\n\n**Describe alternatives you've considered**\n\n"
        "**Additional context**\nAdd any other context or screenshots about the feature "
        "request here."
    ),
    "log": (
        "{}\n\n```\n2026-11-02 10:14:03,117 WARN  [sip] REGISTER from 10.0.4.17:5060: 401 "
        "Unauthorized\n2026-11-02 10:14:05,402 INFO  [core] configuration reloaded\n```"
    ),
}


@pytest.mark.parametrize("frame", FRAMES)
def test_labels_stable_when_the_request_is_framed(trained_model: TriageModel, frame: str) -> None:
    """Framed so, 79, 75, 49 and 17 of the 114 clear-cut requests changed labels before the
    frame was recognised as such (``model.boilerplate``); now every one keeps its labels."""
    texts = [text for _, text in _pooled_cases()]
    plain = trained_model.suggest_many(texts, explain=False)
    framed = trained_model.suggest_many([FRAMES[frame].format(t) for t in texts], explain=False)
    changed = [
        f"{a.labels} -> {b.labels}: {text!r}"
        for text, a, b in zip(texts, plain, framed, strict=True)
        if a.labels != b.labels
    ]
    assert not changed, "\n".join(changed)


# ------------------------------------------------------------ cross-language

TRANSLATIONS = [
    (
        "Bitte Zwei-Faktor-Authentifizierung für das Admin-Portal",
        "Please add two-factor authentication to the admin portal",
    ),
    (
        "Kunde möchte an Feiertagen eine eigene Ansage in der Hotline",
        "Customer wants a separate announcement on the hotline on public holidays",
    ),
    (
        "Eine native Salesforce-Integration würde vielen unserer Kunden Zeit sparen",
        "A native Salesforce integration would save many of our customers time",
    ),
    (
        "Ein ehemaliger Mitarbeiter kann immer noch die Anrufaufzeichnungen anhören",
        "A former employee can still listen to the call recordings",
    ),
    (
        "Kann das Telefon des Geschäftsführers in Gold lackiert werden? Nur für ihn.",
        "Can the managing director's phone be painted gold? Only for him.",
    ),
    (
        "Wie richten wir eine Warteschlange mit Überlauf auf die Zentrale ein?",
        "How do we set up a queue that overflows to reception?",
    ),
]


# The challenge requests and their translations (160 pairs, texts of every length and style)
# are labelled alike 80.6 % of the time, with or without the concept lexicon that was removed.
MIN_SAME_ACROSS_LANGUAGES = 0.75


def test_translations_get_the_same_labels(trained_model: TriageModel) -> None:
    originals = load_samples(SAMPLES / "challenge.jsonl").samples
    translations = load_samples(SAMPLES / "challenge_translated.jsonl")
    pairs = [*TRANSLATIONS, *translation_pairs(originals, translations)]
    differing = []
    for a, b in pairs:
        labels_a, labels_b = labels_of(trained_model, a), labels_of(trained_model, b)
        if labels_a != labels_b:
            differing.append(f"{sorted(labels_a)} vs {sorted(labels_b)}: {b[:80]!r}")
    same = 1 - len(differing) / len(pairs)
    assert same >= MIN_SAME_ACROSS_LANGUAGES, f"{same:.3f} alike; differing:\n" + "\n".join(
        differing
    )
