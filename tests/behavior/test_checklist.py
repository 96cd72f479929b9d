"""Behaviour tests in the style of CheckList: capabilities, invariances, translations.

The cases are written fresh for these tests (not copied from the sample data), so they probe
whether the model learnt the ideas rather than the training sentences.
"""

from __future__ import annotations

import pytest

from model import TriageModel


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


@pytest.mark.parametrize(
    ("label", "text"), MFT, ids=[f"{lab}-{i}" for i, (lab, _) in enumerate(MFT)]
)
def test_minimum_functionality(trained_model: TriageModel, label: str, text: str) -> None:
    assert label in labels_of(trained_model, text)


NARROW = [
    "Kann das Telefon des Chefs beim Klingeln in Pink blinken? Nur für ihn.",
    "Our CEO wants a Tetris game on his desk phone for the lunch break",
    "Unterstützung für ein ISDN-Faxgerät von 1994, das nur ein Kunde noch hat",
    "Just one client wants the Windows 95 startup sound when the softphone starts",
]


@pytest.mark.parametrize("text", NARROW, ids=[f"narrow-{i}" for i in range(len(NARROW))])
def test_narrow_wishes_get_no_label(trained_model: TriageModel, text: str) -> None:
    suggestion = trained_model.suggest(text, explain=False)
    assert suggestion.labels == []
    assert suggestion.outcome in ("decline_limited_use", "needs_review")


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


@pytest.mark.parametrize(
    ("german", "english"), TRANSLATIONS, ids=[f"de-en-{i}" for i in range(len(TRANSLATIONS))]
)
def test_translation_gets_the_same_labels(
    trained_model: TriageModel, german: str, english: str
) -> None:
    assert labels_of(trained_model, german) == labels_of(trained_model, english)
