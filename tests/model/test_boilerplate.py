"""What ``boilerplate_spans`` leaves out of a request, and what it must keep."""

from __future__ import annotations

import pytest

from model.boilerplate import _is_footer, boilerplate_spans
from model.text import _stop_union, analyze


def dropped(text: str) -> list[str]:
    return [text[s:e] for s, e in boilerplate_spans(text, _stop_union())]


def kept_words(text: str) -> list[str]:
    return [t.lower for t in analyze(text).tokens]


def test_greeting_sign_off_signature_and_legal_footer_are_left_out() -> None:
    text = (
        "Hallo zusammen,\n\n"
        "unsere Aufnahmen von 2019 liegen noch alle im Portal.\n\n"
        "Mit freundlichen Grüßen\n"
        "Petra Lang\n"
        "Datenschutzbeauftragte\n"
        "Lang & Söhne GmbH | Amtsgericht Ulm HRB 4711\n"
        "Diese E-Mail kann vertrauliche Informationen enthalten. Wenn Sie nicht der richtige\n"
        "Adressat sind, informieren Sie bitte den Absender."
    )
    assert dropped(text)[0] == "Hallo zusammen,"
    assert dropped(text)[1].startswith("Mit freundlichen Grüßen\nPetra Lang")
    assert dropped(text)[1].endswith("informieren Sie bitte den Absender.")
    assert kept_words(text) == ["aufnahmen", "<num>", "liegen", "portal"]


def test_a_sign_off_after_a_dash_delimiter_and_a_mobile_tagline() -> None:
    text = (
        "Hi team,\nplease add SSO for the softphone.\n\nThanks,\nJenny\n--\n"
        "Jenny Park | IT Manager\nThis email and any attachments are confidential and intended "
        "solely for the addressee.\n\nSent from my iPhone"
    )
    assert kept_words(text) == ["add", "sso", "softphone"]


def test_issue_template_headings_hints_and_machine_output_are_left_out() -> None:
    text = (
        "**Is your feature request related to a problem? Please describe.**\n"
        "Guests can join any room by guessing its name.\n\n"
        "**Describe the solution you'd like**\n"
        "A clear and concise description of what you want to happen.\n\n"
        "### Additional context\n"
        "```\n2026-11-02 10:14:03 WARN [auth] guest joined room 'board'\n```\n"
        "Nov  2 10:14:05 meet prosody: guest session opened"
    )
    assert kept_words(text) == ["guests", "join", "room", "guessing"]


@pytest.mark.parametrize(
    "text",
    [
        # A closing word inside a sentence, and a sign-off followed by more of the request.
        "Thanks to the last update our hold music is gone.\nCan we upload it again?",
        "Please add 2FA.\n\nThanks!\n\n+1, we need this for all 300 seats too.",
        # The request's own words about confidentiality, a heading with its text on the line.
        "The call recordings are confidential.\nOnly HR may listen to them.",
        "Problem: the intern who left in May still has the app.\nPlease check.",
        "Diese Aufnahmen enthalten vertrauliche Gespräche.\nBitte nach 90 Tagen löschen.",
        # Registration words in a sentence are no footer (the whole rest of such a paragraph
        # was left out as one).
        "Hi all,\nex-staff still make calls using the company number for weeks.\nPlease fix.",
        "Customers text the company number all day.\nWe need SMS in the app.",
        "Der Aufsichtsrat tagt per Video.\nBitte die Aufzeichnung sperren.",
        "Our registered office moved.\nPlease update the emergency address.",
    ],
)
def test_the_request_itself_is_kept(text: str) -> None:
    kept = dropped(text)
    assert all(part.strip() in {"Thanks!", "Hi all,"} for part in kept), kept


def test_a_greeting_below_a_subject_line() -> None:
    assert dropped("Wartemusik\n\nHallo Herr Maier,\nbitte neue Wartemusik.") == [
        "Hallo Herr Maier,"
    ]


def test_a_one_line_text_is_never_cut() -> None:
    assert dropped("Danke") == []
    assert dropped("Best regards") == []


def test_the_language_is_the_requests_not_its_frames() -> None:
    text = (
        "**Is your feature request related to a problem? Please describe.**\n"
        "Der Praktikant, der im Mai gegangen ist, kann immer noch unsere Voicemails abhören.\n"
        "**Additional context**"
    )
    assert analyze(text).lang == "de"


@pytest.mark.parametrize(
    "line",
    [
        "This e-mail and any attachments are confidential.",
        "The message may contain privileged information",
        "It is intended solely for the addressee.",
        "If you have received it in error, delete it.",
        "Please notify the sender immediately.",
        "Any unauthorised disclosure is prohibited.",
        "Please consider the environment before printing this e-mail.",
        "Registered office: 4 Quay Street, Bristol",
        "Company number 01234567",
        "VAT reg 123 456 789",
        "Company No: 01234567",
        "VAT number: DE123456789",
        "Registered in England and Wales No. 0123",
        "Diese E-Mail kann vertrauliche Informationen enthalten.",
        "Diese Nachricht und alle Anhänge sind rechtlich geschützt.",
        "Wenn Sie nicht der richtige Adressat sind,",
        "oder diese E-Mail irrtümlich erhalten haben,",
        "Unbefugte Weitergabe ist nicht gestattet.",
        "Geschäftsführer: Hans Weber",
        "Amtsgericht Stuttgart HRB 12345",
        "Handelsregister B 4711",
        "USt-IdNr. DE123456789",
        "Steuer-Nr. 12/345/67890",
        "Sitz der Gesellschaft: Köln",
        "Vorstand: A. Muster, B. Beispiel",
        "Aufsichtsrat: C. Vorsitz",
        "Bitte denken Sie an die Umwelt, bevor Sie diese E-Mail ausdrucken.",
    ],
)
def test_every_kind_of_footer_line_is_recognised(line: str) -> None:
    """Each alternative of the footer pattern, through the cheap stem test in front of it."""
    assert _is_footer(line)
