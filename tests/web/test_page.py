"""The review page in a real browser (Debian's Chromium, headless, driven by Playwright).

Intake three requests through the API (German, English, one with HTML in it), find them in the
inbox, check highlights and bars, accept one, correct another's labels with the keyboard, and
find both reviews in ``GET /v1/reviews/export``; no script from a request may ever run.
Screenshots go to ``test-artifacts/web/``; ``TRIAGE_DOCS_SCREENSHOT=1`` also refreshes
``docs/request-view.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from web_testing import API_KEY, AUTH, REPO_ROOT, ThreadedServer

from tests.conftest import CROSS_LANGUAGE_PAIR

REVIEWER = "Jana Dietrich"
GERMAN = {
    "title": "Zwei-Faktor-Anmeldung für das Admin-Portal",
    "text": "Viele unserer Kunden möchten, dass sich Administratoren im Portal nur noch mit "
    "2FA anmelden. Nach dem letzten Pentest gilt das Passwort allein als Sicherheitslücke. "
    "Eine SSO-Integration würde außerdem allen Kunden Zeit sparen.",
    "partner": "Muster IT GmbH",
    "customer": "Bäckerei Groß",
    "source": "form",
    "received_at": "2025-01-14T10:30:00Z",
}
ENGLISH = {
    "title": "Hold music for the hotline",
    "text": "Our customer wants a different hold music and a new greeting for the hotline "
    "queue. How do we set that up?",
    "partner": "Acme Telecom Ltd",
    "customer": "Northwind Insurance",
    "source": "mail",
    "received_at": "2025-01-14T09:30:00Z",
}
HOSTILE = {
    "title": "Export <script>alert(1)</script>",
    "text": "Please add CSV export of call reports <img src=x onerror=alert(1)> "
    '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 1"> '
    "for all our customers.",
    "partner": "<b>Evil</b> Corp",
    "source": "form",
    "received_at": "2025-01-14T08:30:00Z",
}
LABEL_KEYS = {"msp_configurable": "1", "security": "2", "broad_value": "3"}


def intake(server: ThreadedServer, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(server.url + "/v1/requests", json=body, headers=AUTH, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def intake_many(server: ThreadedServer, texts: list[str]) -> list[int]:
    """Store ``texts`` in order; their ids as the inbox lists them, newest first."""
    for text in texts:
        intake(server, {"text": text})
    rows = httpx.get(
        f"{server.url}/v1/requests", params={"limit": len(texts)}, headers=AUTH, timeout=30
    ).json()
    return [row["id"] for row in rows]


def stored(server: ThreadedServer, request_id: int) -> dict[str, Any]:
    return httpx.get(f"{server.url}/v1/requests/{request_id}", headers=AUTH, timeout=30).json()


def exported(server: ThreadedServer) -> dict[str, dict[str, Any]]:
    response = httpx.get(server.url + "/v1/reviews/export", headers=AUTH, timeout=30)
    assert response.status_code == 200
    records = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return {record["id"]: record for record in records}


class Watch:
    """What must never happen on the page: dialogs, script errors, failed API calls."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(r.url))

    def assert_clean(self, page: Any) -> None:
        assert self.dialogs == [], "a dialog opened: a request's script ran"
        assert page.evaluate("window.__xss") is None, "a request's script ran"
        assert self.errors == []
        assert self.failed == []


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, Watch]]]:
    contexts: list[Any] = []

    def open_(server: ThreadedServer, width: int = 1280, height: int = 800) -> tuple[Any, Watch]:
        context = browser.new_context(
            viewport={"width": width, "height": height}, locale="en-GB", timezone_id="UTC"
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watch = Watch(page)
        page.goto(server.url + "/")
        page.get_by_label("Reviewer name").fill(REVIEWER)
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"#/inbox$"))
        return page, watch

    yield open_
    for context in contexts:
        context.close()


# Request #id on screen as read for the address shown: the page has routed that address (its
# hashchange may still be to come), read the request (no longer aria-busy) and shows it. The
# heading alone may be left from when the same request was open before (from the inbox, under
# another list, before signing in again) while it is still being read, or was refused.
REQUEST_SHOWN = """id => document.body.dataset.routed === location.hash
    && !document.getElementById('view-request').hidden
    && !document.getElementById('view-request').hasAttribute('aria-busy')
    && !document.getElementById('req-body').hidden
    && document.getElementById('req-h').textContent === `Request #${id}`"""


def wait_for_request(page: Any, request_id: int) -> None:
    """Wait until request ``request_id`` is open: read for this address, not left from before."""
    # The address may carry the inbox filters and page the request was opened from.
    page.wait_for_url(re.compile(rf"#/request/{request_id}(\?[^#]*)?$"))
    page.wait_for_function(REQUEST_SHOWN, arg=request_id)


def test_review_flow_in_the_browser(
    web_server: ThreadedServer, open_page: Callable[..., tuple[Any, Watch]], artifacts: Path
) -> None:
    de, en, hostile = (intake(web_server, body) for body in (GERMAN, ENGLISH, HOSTILE))
    page, watch = open_page(web_server)

    # Inbox: newest first, request text shown as text.
    rows = page.locator("#inbox-rows tr")
    rows.filter(has_text=HOSTILE["title"]).wait_for()
    ids = [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")]
    assert ids.index(de["id"]) < ids.index(en["id"]) < ids.index(hostile["id"])
    assert page.locator("#inbox-rows img, #inbox-rows script").count() == 0
    de_row = page.locator(f"#inbox-rows tr[data-id='{de['id']}']")
    assert de_row.locator(".c-lang").inner_text() == "de"

    # Search: typing narrows the inbox (the customer's name, with umlaut and ß), clearing it
    # brings every request back.
    def listed() -> list[int]:
        return [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")]

    page.get_by_label("Search").fill("BÄCKEREI GROSS")
    page.wait_for_function("() => document.querySelectorAll('#inbox-rows tr').length === 1")
    assert listed() == [de["id"]]
    page.get_by_label("Search").fill("")
    page.wait_for_function("() => document.querySelectorAll('#inbox-rows tr').length === 3")
    assert listed() == ids

    # Request view: highlights per label, bars with thresholds, outcome, similar requests.
    de_row.get_by_role("link").click()
    wait_for_request(page, de["id"])
    suggestion = de["suggestion"]
    assert page.locator("#req-text").text_content() == GERMAN["text"]
    assert page.locator("#req-title").text_content() == GERMAN["title"]
    for_security = "#req-text mark[data-for~='security'], #req-title mark[data-for~='security']"
    assert page.locator(for_security).count() >= 1
    for ls in suggestion["per_label"]:
        for ev in ls["evidence"]:
            field = GERMAN[ev["field"]]
            assert field[ev["start"] : ev["end"]] == ev["text"]
    marked = page.locator("#req-text mark.ev-for, #req-title mark.ev-for").all_text_contents()
    supporting = {ev["text"] for ls in suggestion["per_label"] for ev in ls["evidence"]}
    assert marked and all(any(m in s for s in supporting) for m in marked)
    assert page.locator(".legend button[data-label='security']").get_attribute("aria-pressed") == (
        "true"
    )
    bars = page.locator("#req-bars .bar-row")
    assert bars.count() == len(suggestion["per_label"])
    for ls in suggestion["per_label"]:
        row = page.locator(f"#req-bars .bar-row[data-label='{ls['label']}']")
        meter = row.get_by_role("meter")
        assert float(meter.get_attribute("aria-valuenow")) == pytest.approx(ls["score"], abs=0.01)
        mark_left = row.locator(".bar-mark").evaluate("m => parseFloat(m.style.left)")
        assert mark_left == pytest.approx(ls["threshold"] * 100, abs=0.1)
        assert ("yes" in row.get_attribute("class").split()) == ls["decision"]
    assert "security" in suggestion["labels"]
    assert page.locator("#req-outcome").get_attribute("data-outcome") == suggestion["outcome"]
    assert page.locator("#req-rationale").text_content() == suggestion["rationale"]
    assert page.locator("#req-similar li").count() == len(suggestion["similar"])
    assert page.get_by_text("Keyboard shortcuts").is_visible()
    page.screenshot(path=artifacts / "request-view.png")
    if os.environ.get("TRIAGE_DOCS_SCREENSHOT") == "1":
        (REPO_ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(artifacts / "request-view.png", REPO_ROOT / "docs" / "request-view.png")

    # Accept in one click; the next pending request opens.
    page.get_by_role("button", name="Accept suggestion").click()
    wait_for_request(page, en["id"])

    # Correct the English one with the keyboard: toggle two labels, comment, save.
    suggested = set(en["suggestion"]["labels"])
    toggled = {"security", "broad_value"}
    expected = suggested ^ toggled
    page.keyboard.press(LABEL_KEYS["security"])
    page.keyboard.press(LABEL_KEYS["broad_value"])
    for label, key in LABEL_KEYS.items():
        toggle = page.locator(f"#label-toggles [data-label='{label}']")
        assert toggle.get_attribute("aria-pressed") == str(label in expected).lower(), key
    page.keyboard.press("c")
    page.keyboard.type("Hold music is a tenant setting.")
    page.keyboard.press("Control+Enter")
    wait_for_request(page, hostile["id"])

    # The hostile one: shown literally, nothing ran.
    assert page.locator("#req-title").text_content() == HOSTILE["title"]
    assert page.locator("#req-text").text_content() == HOSTILE["text"]
    assert HOSTILE["partner"] in page.locator("#req-meta").text_content()
    assert page.locator("#req-text img, #req-title img, #req-text script, #req-meta b").count() == 0
    page.screenshot(path=artifacts / "request-view-hostile.png")

    # Both reviews are stored as decided.
    records = exported(web_server)
    accepted = records[f"inbox-{de['id']}"]
    assert accepted["labels"] == suggestion["labels"]
    assert accepted["reviewer"] == REVIEWER and accepted["blind"] is False
    corrected = records[f"inbox-{en['id']}"]
    assert set(corrected["labels"]) == expected
    assert corrected["reviewer"] == REVIEWER and corrected["blind"] is False
    review = stored(web_server, en["id"])["review"]
    assert review["comment"] == "Hold music is a tenant setting." and not review["labels_agreed"]
    assert f"inbox-{hostile['id']}" not in records
    watch.assert_clean(page)


def test_an_erased_request_shows_why_and_cannot_be_reviewed(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    kept, erased = intake(server, ENGLISH), intake(server, GERMAN)
    assert httpx.delete(f"{server.url}/v1/requests/{erased['id']}", headers=AUTH).status_code == 200
    page, watch = open_page(server)
    page.locator(f"#inbox-rows tr[data-id='{kept['id']}']").get_by_role("link").click()
    wait_for_request(page, kept["id"])
    page.goto(f"{server.url}/#/request/{erased['id']}")  # an old link, say from a mail
    page.locator("#req-error").filter(has_text="was erased").wait_for()
    assert page.locator("#req-body").is_hidden()
    page.keyboard.press("a")  # the request shown before must not be accepted instead
    page.keyboard.press("s")
    page.wait_for_timeout(300)
    assert stored(server, kept["id"])["review"] is None
    assert watch.failed == [f"{server.url}/v1/requests/{erased['id']}"]  # the 410, and no review
    watch.failed.clear()
    watch.assert_clean(page)

    # Erased while it is open: saving says so, and its words leave the screen.
    gone = intake(server, GERMAN)
    page.goto(f"{server.url}/#/request/{gone['id']}")
    wait_for_request(page, gone["id"])
    assert httpx.delete(f"{server.url}/v1/requests/{gone['id']}", headers=AUTH).status_code == 200
    page.get_by_role("button", name="Save my decision").click()
    page.locator("#req-error").filter(has_text="was erased").wait_for()
    assert page.locator("#req-body").is_hidden()


def test_a_link_to_a_request_in_the_other_language_says_so(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    german = intake(server, {"text": CROSS_LANGUAGE_PAIR[0]})
    english = intake(server, {"text": CROSS_LANGUAGE_PAIR[1]})
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{english['id']}")
    wait_for_request(page, english["id"])
    link = page.locator("#req-demand-links li")
    link.first.wait_for()
    assert link.count() == 1
    assert re.fullmatch(rf"#{german['id']} \(0\.\d\d, DE\)", link.first.text_content() or "")
    assert "1 earlier similar request" in (page.locator("#req-demand").text_content() or "")
    # Past requests in the other language are marked as such among the similar ones.
    across = [s for s in english["suggestion"]["similar"] if s["cross_language"]]
    marked = page.locator("#req-similar li.cross-language")
    assert across and marked.count() == len(across)
    assert "same wish in the other language" in (marked.first.text_content() or "")
    watch.assert_clean(page)


def test_blind_review_hides_the_suggestion_until_decided(
    start_web: Callable[..., ThreadedServer],
    open_page: Callable[..., tuple[Any, Watch]],
    artifacts: Path,
) -> None:
    server = start_web(blind_review_share=1.0)
    created = intake(server, GERMAN)
    page, watch = open_page(server)
    page.locator("#inbox-rows tr").first.wait_for()
    assert page.locator("#inbox-rows .chip.blind").count() == 1
    assert page.locator("#inbox-rows .c-labels .chip").count() == 0
    page.keyboard.press("Enter")
    wait_for_request(page, created["id"])
    assert page.locator("#req-text").text_content() == GERMAN["text"]
    assert page.locator("#req-text mark, #req-title mark").count() == 0
    for hidden in ("#req-suggestion", "#req-similar-box", "#btn-accept", "#req-legend"):
        assert page.locator(hidden).is_hidden(), hidden
    assert page.locator("#req-blind").is_visible()
    assert page.locator("#label-toggles [aria-pressed='true']").count() == 0
    page.screenshot(path=artifacts / "request-view-blind.png")
    page.keyboard.press("a")  # nothing to accept: no review
    page.keyboard.press(LABEL_KEYS["security"])
    page.keyboard.press("s")
    toast = page.locator("#toast").filter(has_text="The model suggested")
    toast.wait_for()
    # The API withheld the suggestion until the review was saved; the page fetched it after.
    assert "The model suggested: Security" in (toast.text_content() or "")
    record = exported(server)[f"inbox-{created['id']}"]
    assert record["blind"] is True and record["labels"] == ["security"]
    assert len(stored(server, created["id"])["reviews"]) == 1
    watch.assert_clean(page)


def test_phone_width_try_box_and_model_page(
    web_server: ThreadedServer, open_page: Callable[..., tuple[Any, Watch]], artifacts: Path
) -> None:
    created = intake(web_server, {**GERMAN, "received_at": "2025-01-15T07:00:00Z"})
    page, watch = open_page(web_server, width=390, height=844)
    no_overflow = "() => document.documentElement.scrollWidth <= window.innerWidth"
    page.locator(f"#inbox-rows tr[data-id='{created['id']}']").wait_for()
    assert page.evaluate(no_overflow)
    page.goto(f"{web_server.url}/#/request/{created['id']}")
    wait_for_request(page, created["id"])
    page.locator("#req-bars .bar-row").first.wait_for()
    assert page.evaluate(no_overflow)
    accept = page.get_by_role("button", name="Accept suggestion")
    assert accept.is_visible() and accept.bounding_box()["width"] <= 390
    page.screenshot(path=artifacts / "request-view-phone.png", full_page=True)

    # Try a request: suggested, not stored.
    total_before = httpx.get(web_server.url + "/v1/requests", headers=AUTH).headers["x-total-count"]
    page.get_by_role("link", name="Try a request").click()
    tried = (
        "Hallo zusammen,\n😀😀 Bitte 2FA für das Admin-Portal <img src=x onerror=alert(1)>"
        "\n\nGruß\nJana"
    )
    page.get_by_label("Text to try").fill(tried)
    page.get_by_role("button", name="Suggest", exact=True).click()
    page.locator("#try-bars .bar-row").first.wait_for()
    assert page.locator("#try-outcome").get_attribute("data-outcome") == "security_fix"
    assert page.locator("#try-res-text mark").count() >= 1
    assert page.locator("#try-res-text").text_content() == tried
    # The offsets count code points, as Python does; after the emoji (two UTF-16 units each)
    # every mark must still cover exactly what the API quoted as evidence.
    answer = httpx.post(web_server.url + "/v1/suggest", json={"text": tried}).json()
    quoted = [e["text"] for ls in answer["per_label"] for e in ls["evidence"]]
    marked = page.locator("#try-res-text mark").all_text_contents()
    assert marked and all(any(m in q for q in quoted) for m in marked), (marked, quoted)
    # The greeting and the sign-off, which the model did not read, are greyed.
    unread = page.locator("#try-res-text .unread")
    assert unread.all_text_contents() == ["Hallo zusammen,", "Gruß\nJana"]
    assert "not read by the model" in (unread.first.get_attribute("title") or "")
    assert page.locator("#try-res-text img").count() == 0
    total_after = httpx.get(web_server.url + "/v1/requests", headers=AUTH).headers["x-total-count"]
    assert total_after == total_before

    # Model page: metrics and the report pictures, loaded.
    page.get_by_role("link", name="Model").click()
    page.locator("#model-pictures img").first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#model-pictures img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#model-pictures img").count() >= 7
    assert page.locator("#model-metrics tbody tr").count() == 3
    assert page.evaluate(no_overflow)
    watch.assert_clean(page)


def test_a_bookmarked_request_a_dead_service_long_words_and_the_keyboard(
    web_server: ThreadedServer, browser: Any
) -> None:
    long_word = "https://portal.example/" + "x" * 300
    created = intake(web_server, {"text": f"Bitte 2FA für das Admin-Portal, siehe {long_word}"})
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        # A bookmark of a request, in a tab not yet signed in: signing in opens that request
        # (the address does not change, so no hashchange said so before).
        page.goto(f"{web_server.url}/#/request/{created['id']}")
        page.get_by_label("Reviewer name").fill(REVIEWER)
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Sign in").click()
        wait_for_request(page, created["id"])

        # A word longer than the page breaks instead of widening it.
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")

        # A label toggled by keyboard keeps the focus, so Space toggles it back.
        toggle = page.locator("#label-toggles [data-label='broad_value']")
        before = toggle.get_attribute("aria-pressed")
        toggle.focus()
        page.keyboard.press("Space")
        assert page.evaluate("() => document.activeElement.dataset.label") == "broad_value"
        page.keyboard.press("Space")
        assert toggle.get_attribute("aria-pressed") == before

        # The service cannot be reached: the reviewer is told that nothing was saved.
        page.route("**/v1/requests/*/review", lambda route: route.abort())
        page.get_by_role("button", name="Save my decision").click()
        error = page.locator("#req-error")
        error.wait_for()
        assert "cannot be reached; nothing was saved" in error.inner_text()
        assert stored(web_server, created["id"])["status"] == "pending"

        # An address no request can have says so in words, not in the API's validation terms.
        page.unroute("**/v1/requests/*/review")
        page.goto(f"{web_server.url}/#/request/0")
        page.wait_for_function(
            "() => !document.querySelector('#req-error').innerText.includes('reached')"
        )
        assert error.inner_text() == "There is no request “0”: requests are numbered 1, 2, 3, …"
        assert page.locator("#req-body").is_hidden()
    finally:
        context.close()


def test_next_and_previous_go_on_across_inbox_pages(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    newest_first = intake_many(  # one more than a page of the inbox
        server,
        [f"Filiale {branch}: bitte eine andere Wartemusik in der Queue" for branch in range(51)],
    )
    last_of_first_page, only_of_second = newest_first[49], newest_first[50]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{last_of_first_page}")
    wait_for_request(page, last_of_first_page)
    assert page.locator("#req-pos").inner_text() == "50 of 51"

    page.get_by_role("button", name="Next →").click()
    wait_for_request(page, only_of_second)
    assert page.locator("#req-pos").inner_text() == "51 of 51"
    assert page.get_by_role("button", name="Next →").is_disabled()

    page.keyboard.press("k")  # previous, by keyboard, back across the edge
    wait_for_request(page, last_of_first_page)
    assert page.locator("#req-pos").inner_text() == "50 of 51"
    watch.assert_clean(page)


def test_next_across_the_page_edge_says_why_when_the_next_page_cannot_load(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    newest_first = intake_many(
        server, [f"Standort {branch}: Ansage vor der Warteschlange ändern" for branch in range(51)]
    )
    last_of_first_page, only_of_second = newest_first[49:]
    page, _ = open_page(server)
    page.goto(f"{server.url}/#/request/{last_of_first_page}")
    wait_for_request(page, last_of_first_page)
    problem = {"title": "Service unavailable", "status": 503, "detail": "The inbox store is busy."}
    page.route(
        "**/v1/requests?*offset=50*",
        lambda route: route.fulfill(
            status=503, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )

    page.get_by_role("button", name="Next →").click()
    error = page.locator("#req-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "The inbox store is busy."
    assert page.locator("#req-pos").inner_text() == "50 of 51"  # still on the same request
    page.unroute("**/v1/requests?*offset=50*")
    page.get_by_role("button", name="Next →").click()  # the same step, once the page loads
    wait_for_request(page, only_of_second)
    assert page.locator("#req-pos").inner_text() == "51 of 51"


def test_the_outcome_choice_keeps_the_security_rule(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    created = intake(server, ENGLISH)  # hold music: not a security request
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{created['id']}")
    wait_for_request(page, created["id"])
    select = page.locator("#decide-outcome")

    def disabled() -> set[str]:
        return set(select.evaluate("s => [...s.options].filter(o => o.disabled).map(o => o.value)"))

    assert disabled() == {"security_fix"}
    select.select_option("decline_limited_use")  # the reviewer's own call
    page.locator("#label-toggles [data-label='security']").click()
    # Marked security, the request can only be a security fix: the choice follows.
    assert select.input_value() == "security_fix"
    assert disabled() == {"partner_configures", "prioritize_broad_value", "decline_limited_use"}
    page.locator("#label-toggles [data-label='security']").click()
    assert disabled() == {"security_fix"} and select.input_value() != "security_fix"
    page.locator("#label-toggles [data-label='security']").click()
    page.get_by_role("button", name="Save my decision").click()
    for _ in range(150):  # the page goes on once saved; the store says when (15 s at most)
        if (saved := stored(server, created["id"]))["status"] == "reviewed":
            break
        page.wait_for_timeout(100)
    assert "security" in saved["review"]["labels"] and saved["review"]["outcome"] == "security_fix"
    watch.assert_clean(page)


def test_after_a_decision_on_a_later_inbox_page_the_next_one_there_opens(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    newest_first = intake_many(
        server,
        [f"Standort {branch}: bitte eine eigene Ansage für die Hotline" for branch in range(53)],
    )
    page, watch = open_page(server)
    page.get_by_role("button", name="Next page").click()
    page.locator(f"#inbox-rows tr[data-id='{newest_first[50]}']").wait_for()
    page.locator(f"#inbox-rows tr[data-id='{newest_first[51]}']").get_by_role("link").click()
    wait_for_request(page, newest_first[51])
    assert page.locator("#req-pos").inner_text() == "52 of 53"
    page.get_by_role("button", name="Save my decision").click()
    # Decided, it leaves the pending list: the one after it opens, in its new place.
    wait_for_request(page, newest_first[52])
    assert page.locator("#req-pos").inner_text() == "52 of 52"
    watch.assert_clean(page)


def test_names_that_would_fail_or_reorder_a_line_are_refused_or_isolated(
    start_web: Callable[..., ThreadedServer], browser: Any
) -> None:
    server = start_web()
    created = intake(server, {**ENGLISH, "partner": "ACME\u202e GmbH", "customer": "B" * 200})
    context = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        for name in ("\u200b", "Tab\tName", "X\u202eevil"):  # the API would refuse them
            page.get_by_label("Reviewer name").fill(name)
            page.get_by_label("API key").fill(API_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.locator("#login-error").wait_for(state="visible")
            assert "name" in page.locator("#login-error").inner_text()
        page.get_by_label("Reviewer name").fill(REVIEWER)
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"#/inbox$"))
        page.goto(f"{server.url}/#/request/{created['id']}")
        wait_for_request(page, created["id"])
        # A right-to-left override in a partner's name stays inside its own part of the line,
        # and a 200-letter name wraps instead of widening the page.
        isolation = page.locator("#req-meta > span").first.evaluate(
            "s => getComputedStyle(s).unicodeBidi"
        )
        assert isolation == "isolate"
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_a_failed_try_hides_the_last_result_and_says_what_failed(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    page, _ = open_page(server)
    page.get_by_role("link", name="Try a request").click()
    page.get_by_label("Text to try").fill("Bitte 2FA für das Admin-Portal")
    page.get_by_role("button", name="Suggest", exact=True).click()
    page.locator("#try-bars .bar-row").first.wait_for()
    page.route("**/v1/suggest", lambda route: route.abort())
    page.get_by_label("Text to try").fill("Hold music per queue")
    page.get_by_role("button", name="Suggest", exact=True).click()
    error = page.locator("#try-error")
    error.wait_for(state="visible")
    assert "so there is no suggestion" in error.inner_text()
    assert page.locator("#try-result").is_hidden()  # not the 2FA text's result under this one


def listed(page: Any) -> list[int]:
    rows = page.locator("#inbox-rows tr")
    return [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")]


def wait_for_list(page: Any, ids: list[int]) -> None:
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#inbox-rows tr')]"
        ".map(r => Number(r.dataset.id))) === JSON.stringify(ids)",
        arg=ids,
    )


def review_by_api(server: ThreadedServer, request_id: int) -> None:
    body = {"labels": ["msp_configurable"], "reviewer": "Someone Else"}
    response = httpx.post(
        f"{server.url}/v1/requests/{request_id}/review", json=body, headers=AUTH, timeout=30
    )
    assert response.status_code == 201, response.text


def test_inbox_filters_live_in_the_address(
    start_web: Callable[..., ThreadedServer],
    open_page: Callable[..., tuple[Any, Watch]],
    browser: Any,
) -> None:
    server = start_web()
    de, en = intake(server, GERMAN), intake(server, ENGLISH)
    second = {
        **ENGLISH,
        "title": "Hold music for the second hotline",
        "text": "Please let us change the hold music of our second hotline queue ourselves.",
        "received_at": "2025-01-14T11:30:00Z",
    }
    en2 = intake(server, second)
    review_by_api(server, en["id"])
    page, watch = open_page(server)
    wait_for_list(page, [en2["id"], de["id"]])  # pending, newest first

    # Each filter chosen is an address of its own; a search rewrites the current one.
    page.get_by_label("Language").select_option("en")
    page.wait_for_url(re.compile(r"#/inbox\?lang=en$"))
    wait_for_list(page, [en2["id"]])
    page.get_by_label("Status").select_option("")  # All
    page.wait_for_url(re.compile(r"#/inbox\?status=all&lang=en$"))
    wait_for_list(page, [en2["id"], en["id"]])
    page.get_by_label("Search").fill("second hotline")
    page.wait_for_url(re.compile(r"#/inbox\?q=second\+hotline&status=all&lang=en$"))
    wait_for_list(page, [en2["id"]])

    # A reload shows the same list, with the form as it was.
    page.reload()
    wait_for_list(page, [en2["id"]])
    assert page.get_by_label("Search").input_value() == "second hotline"
    assert page.get_by_label("Status").input_value() == ""
    assert page.get_by_label("Language").input_value() == "en"

    # Back undoes one filter at a time (not the search word by word); Forward redoes it.
    page.go_back()
    page.wait_for_url(re.compile(r"#/inbox\?lang=en$"))
    wait_for_list(page, [en2["id"]])
    assert page.get_by_label("Status").input_value() == "pending"
    assert page.get_by_label("Search").input_value() == ""
    page.go_back()
    page.wait_for_url(re.compile(r"#/inbox$"))
    wait_for_list(page, [en2["id"], de["id"]])
    assert page.get_by_label("Language").input_value() == ""
    page.go_forward()
    page.wait_for_url(re.compile(r"#/inbox\?lang=en$"))
    wait_for_list(page, [en2["id"]])

    # A request opened from the list keeps it: its address names the list, "← Inbox" and Back
    # come back to it.
    page.locator(f"#inbox-rows tr[data-id='{en2['id']}']").get_by_role("link").click()
    page.wait_for_url(re.compile(rf"#/request/{en2['id']}\?lang=en$"))
    wait_for_request(page, en2["id"])
    assert page.locator("#req-pos").inner_text() == "1 of 1"
    page.get_by_role("link", name="← Inbox").click()
    page.wait_for_url(re.compile(r"#/inbox\?lang=en$"))
    wait_for_list(page, [en2["id"]])

    # Values no form offers fall back to the defaults, and the address says what is shown; a
    # page past the end shows the last page there is.
    junk = "status=bogus&lang=xx&label=nope&outcome=%3Cb%3E&sort=random&page=-3&q=" + "x" * 201
    page.goto(f"{server.url}/#/inbox?{junk}")
    page.wait_for_url(re.compile(r"#/inbox$"))
    wait_for_list(page, [en2["id"], de["id"]])
    for name, value in [
        ("status", "pending"),
        ("lang", ""),
        ("label", ""),
        ("outcome", ""),
        ("sort", "received_at"),
        ("q", ""),
    ]:
        assert page.locator(f"#f-{name}").input_value() == value, name
    page.goto(f"{server.url}/#/inbox?lang=de&page=99999")
    page.wait_for_url(re.compile(r"#/inbox\?lang=de$"))
    wait_for_list(page, [de["id"]])
    assert page.locator("#inbox-error").is_hidden()
    watch.assert_clean(page)

    # A link to a filtered view, shared with a reviewer not yet signed in, shows that view.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(15_000)
    try:
        other = context.new_page()
        other.goto(f"{server.url}/#/inbox?status=reviewed&lang=en")
        other.get_by_label("Reviewer name").fill(REVIEWER)
        other.get_by_label("API key").fill(API_KEY)
        other.get_by_role("button", name="Sign in").click()
        other.wait_for_url(re.compile(r"#/inbox\?status=reviewed&lang=en$"))
        wait_for_list(other, [en["id"]])
        assert other.get_by_label("Status").input_value() == "reviewed"
    finally:
        context.close()


def test_a_request_off_the_inbox_list_gets_no_number_but_a_note(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    older = intake(server, ENGLISH)
    newer = intake(server, GERMAN)
    oldest = intake(server, {**ENGLISH, "received_at": "2025-01-14T08:30:00Z"})
    page, watch = open_page(server)
    wait_for_list(page, [newer["id"], older["id"], oldest["id"]])
    position = page.locator("#req-pos")

    # Decided by someone else while this inbox was on screen: it left the pending list, so
    # it has no place in it, whatever the list on screen still showed.
    review_by_api(server, older["id"])
    page.locator(f"#inbox-rows tr[data-id='{older['id']}']").get_by_role("link").click()
    wait_for_request(page, older["id"])
    assert position.inner_text() == "Not in the current inbox list"
    assert page.get_by_role("button", name="Next →").is_disabled()
    assert page.get_by_role("button", name="← Previous").is_disabled()
    page.keyboard.press("j")  # no list to step through from here
    page.wait_for_timeout(300)
    assert page.locator("#req-h").inner_text() == f"Request #{older['id']}"

    # By a direct link: a request in the list gets its place as the list is now ...
    page.goto(f"{server.url}/#/request/{oldest['id']}")
    wait_for_request(page, oldest["id"])
    assert position.inner_text() == "2 of 2"
    # ... one outside it the note; in the list its address names, its place there.
    page.goto(f"{server.url}/#/request/{older['id']}")
    wait_for_request(page, older["id"])
    page.wait_for_function("() => document.getElementById('req-pos').textContent.startsWith('Not')")
    assert position.inner_text() == "Not in the current inbox list"
    page.goto(f"{server.url}/#/request/{older['id']}?status=reviewed")
    page.wait_for_function("() => document.getElementById('req-pos').textContent === '1 of 1'")
    watch.assert_clean(page)

    # The inbox cannot be read: no place is given rather than the old one.
    problem = {"title": "Service unavailable", "status": 503, "detail": "The inbox store is busy."}
    page.route(
        "**/v1/requests?*",
        lambda route: route.fulfill(
            status=503, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )
    page.goto(f"{server.url}/#/request/{newer['id']}?status=reviewed")
    wait_for_request(page, newer["id"])
    page.wait_for_function("() => document.getElementById('req-pos').textContent !== '1 of 1'")
    assert position.inner_text() == "Place in the inbox unknown"
    assert page.get_by_role("button", name="Next →").is_disabled()


def test_unsaved_changes_stay_as_a_draft_and_the_tab_asks_before_closing(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    older = intake(server, ENGLISH)
    newer = intake(server, GERMAN)
    page, watch = open_page(server)
    page.locator(f"#inbox-rows tr[data-id='{newer['id']}']").get_by_role("link").click()
    wait_for_request(page, newer["id"])
    note = page.locator("#req-draft")
    assert note.is_hidden()
    toggle = page.locator("#label-toggles [data-label='broad_value']")
    suggested = toggle.get_attribute("aria-pressed")
    page.keyboard.press(LABEL_KEYS["broad_value"])
    assert note.is_visible()
    page.keyboard.press("c")
    page.keyboard.type("Ask Jakob: keep it?")  # j and k typed here move nowhere
    page.keyboard.press("Escape")
    assert page.locator("#req-h").inner_text() == f"Request #{newer['id']}"

    # Next: the changes are not saved, and the reviewer is told where they went.
    page.keyboard.press("j")
    wait_for_request(page, older["id"])
    page.locator("#toast").filter(has_text=f"changes to #{newer['id']} are not saved").wait_for()
    page.keyboard.press("i")
    draft = page.locator(f"#inbox-rows tr[data-id='{newer['id']}'] .chip.draft")
    draft.wait_for()
    assert page.locator(f"#inbox-rows tr[data-id='{older['id']}'] .chip.draft").count() == 0

    # Back on it: the changes are there again, marked as not saved; the store has none.
    page.locator(f"#inbox-rows tr[data-id='{newer['id']}']").get_by_role("link").click()
    wait_for_request(page, newer["id"])
    page.wait_for_function("() => document.getElementById('decide-comment').value !== ''")
    assert page.locator("#decide-comment").input_value() == "Ask Jakob: keep it?"
    assert toggle.get_attribute("aria-pressed") != suggested
    assert "brought back" in note.inner_text()
    assert stored(server, newer["id"])["status"] == "pending"

    # Closing the tab now would lose them: the browser asks first (dismissed: the tab stays).
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    assert not page.is_closed()
    watch.dialogs.clear()

    # Discarded, the stored decision is back and the tab closes without asking.
    page.get_by_role("button", name="Discard changes").click()
    assert note.is_hidden()
    assert page.locator("#decide-comment").input_value() == ""
    assert toggle.get_attribute("aria-pressed") == suggested
    watch.assert_clean(page)
    with page.expect_event("close"):
        page.close(run_before_unload=True)
    assert watch.dialogs == []


def test_shift_j_and_k_step_to_pending_requests_only(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    ids = intake_many(
        server,
        [f"Filiale {branch}: bitte eine eigene Ansage für die Hotline" for branch in range(52)],
    )  # a page of the inbox and two more
    for decided in (ids[1], ids[2], ids[50]):  # two on the first page, one on the second
        review_by_api(server, decided)
    page, watch = open_page(server)
    page.get_by_label("Status").select_option("")  # All: decided and pending ones
    wait_for_list(page, ids[:50])
    selected = "() => document.querySelector('#inbox-rows tr[aria-selected=true]').dataset.id"

    # In the inbox, the selection skips the decided rows.
    page.keyboard.press("Shift+J")
    assert page.evaluate(selected) == str(ids[3])
    page.keyboard.press("Shift+K")
    assert page.evaluate(selected) == str(ids[0])

    # On a request, too; J alone still goes to the very next one.
    page.keyboard.press("Enter")
    wait_for_request(page, ids[0])
    page.keyboard.press("Shift+J")
    wait_for_request(page, ids[3])
    assert page.locator("#req-pos").inner_text() == "4 of 52"
    page.keyboard.press("Shift+K")
    wait_for_request(page, ids[0])
    page.keyboard.press("j")
    wait_for_request(page, ids[1])

    # Across the edge of the inbox page, skipping the decided first request of the next one,
    # and back.
    page.goto(f"{server.url}/#/request/{ids[49]}?status=all")
    wait_for_request(page, ids[49])
    assert page.locator("#req-pos").inner_text() == "50 of 52"
    page.keyboard.press("Shift+J")
    wait_for_request(page, ids[51])
    assert page.locator("#req-pos").inner_text() == "52 of 52"
    page.keyboard.press("Shift+K")
    wait_for_request(page, ids[49])
    assert page.locator("#req-pos").inner_text() == "50 of 52"
    page.keyboard.press("Shift+J")
    wait_for_request(page, ids[51])
    page.keyboard.press("Shift+J")  # none after the last
    page.locator("#toast").filter(has_text="No pending request after this one").wait_for()

    # A capital J as Caps Lock types it is J; typed into the comment it is only a letter.
    page.keyboard.press("K")
    wait_for_request(page, ids[50])
    page.keyboard.press("c")
    page.keyboard.press("Shift+J")
    page.keyboard.press("Shift+K")
    page.wait_for_timeout(300)
    assert page.locator("#req-h").inner_text() == f"Request #{ids[50]}"
    assert page.locator("#decide-comment").input_value() == "JK"
    keys = page.locator("#shortcuts").inner_text()
    assert "Shift+J / Shift+K" in keys, keys
    watch.assert_clean(page)


def test_an_inbox_answer_overtaken_by_a_newer_one_is_not_shown(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    de, en = intake(server, GERMAN), intake(server, ENGLISH)
    page, watch = open_page(server)
    wait_for_list(page, [de["id"], en["id"]])
    held: list[Any] = []
    page.route(
        "**/v1/requests?*lang=en*", lambda route: held.append(route)
    )  # the English list: answered late
    page.get_by_label("Language").select_option("en")
    page.get_by_label("Language").select_option("de")  # changed again before it came
    wait_for_list(page, [de["id"]])
    assert len(held) == 1
    with page.expect_response(lambda response: "lang=en" in response.url):
        held[0].continue_()
    page.wait_for_timeout(300)
    assert listed(page) == [de["id"]]  # what the filter says, not the answer that came last
    assert page.get_by_label("Language").input_value() == "de"
    assert page.url.endswith("#/inbox?lang=de")
    watch.assert_clean(page)


def hold(page: Any, pattern: str) -> list[Any]:
    """Answers to ``pattern`` wait until the test lets them through (``continue_()``)."""
    held: list[Any] = []
    page.route(pattern, lambda route: held.append(route))
    return held


# What the page shows, for a test that finds a call it waits for never made.
PAGE_STATE = """() => ({
    hash: location.hash,
    routed: document.body.dataset.routed,
    views: [...document.querySelectorAll('[id^=view-]')].filter(v => !v.hidden).map(v => v.id),
    heading: document.getElementById('req-h').textContent,
    error: document.getElementById('req-error').hidden ? null
        : document.getElementById('req-error').textContent,
    toast: document.getElementById('toast').textContent,
    focus: document.activeElement && (document.activeElement.id || document.activeElement.tagName),
    saving: document.getElementById('btn-save').disabled,
})"""


def wait_for_held(page: Any, held: list[Any], count: int, url_part: str) -> None:
    """Wait until ``count`` calls to ``url_part`` are held, as long as any other wait (15 s):
    a route is reported a moment after the call was made, and on a busy machine (CI on
    shared cores) 5 s were once too short. If they never come, say what the page showed."""
    for _ in range(300):
        if len(held) >= count:
            return
        page.wait_for_timeout(50)
    raise AssertionError(
        f"{len(held)} of {count} calls to {url_part} in 15 s; the page: {page.evaluate(PAGE_STATE)}"
    )


def let_through(page: Any, held: list[Any], url_part: str) -> None:
    wait_for_held(page, held, 1, url_part)
    with page.expect_response(lambda response: url_part in response.url):
        held.pop(0).continue_()
    page.wait_for_timeout(300)  # time for the page to (wrongly) act on the late answer


def test_a_request_answer_that_comes_after_the_reviewer_moved_on_is_not_shown(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    first, second, third = (
        intake(server, {**ENGLISH, "received_at": f"2025-01-14T0{hour}:30:00Z"})["id"]
        for hour in (7, 8, 9)
    )
    page, watch = open_page(server)
    wait_for_list(page, [third, second, first])
    header = page.locator("#req-h")

    # A request read slowly, then another opened: the late answer does not replace it.
    held = hold(page, f"**/v1/requests/{first}")
    page.goto(f"{server.url}/#/request/{first}")
    page.goto(f"{server.url}/#/request/{third}")
    wait_for_request(page, third)
    let_through(page, held, f"/v1/requests/{first}")
    page.unroute(f"**/v1/requests/{first}")
    assert header.inner_text() == f"Request #{third}"
    assert re.search(rf"#/request/{third}$", page.url)
    assert page.locator("#req-pos").inner_text() == "1 of 3"

    # Opened from the inbox and still being read: the request shown before is not on screen
    # under the new address, and "accept" does not review it.
    page.keyboard.press("i")
    wait_for_list(page, [third, second, first])
    held = hold(page, f"**/v1/requests/{second}")
    page.locator(f"#inbox-rows tr[data-id='{second}']").get_by_role("link").click()
    page.wait_for_url(re.compile(rf"#/request/{second}$"))
    assert page.locator("#req-body").is_hidden()
    page.keyboard.press("a")
    page.wait_for_timeout(300)
    assert stored(server, third)["review"] is None
    let_through(page, held, f"/v1/requests/{second}")
    page.unroute(f"**/v1/requests/{second}")
    wait_for_request(page, second)
    assert all(stored(server, i)["review"] is None for i in (first, second, third))

    # Left for the inbox before it came: the late answer takes neither the view nor the focus
    # from the search being typed (its letters would have been shortcuts: T, M, I …).
    held = hold(page, f"**/v1/requests/{first}")
    page.goto(f"{server.url}/#/request/{first}")
    page.keyboard.press("i")
    page.get_by_label("Search").click()
    page.keyboard.type("hold")
    let_through(page, held, f"/v1/requests/{first}")
    page.keyboard.type(" music")
    page.wait_for_url(re.compile(r"#/inbox\?q=hold\+music$"))
    assert page.evaluate("() => document.activeElement.id") == "f-q"
    assert page.locator("#view-inbox").is_visible()
    watch.assert_clean(page)


def test_a_step_whose_page_comes_after_the_reviewer_moved_on_does_not_move_them(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    ids = intake_many(
        server,
        [f"Filiale {branch}: bitte eine eigene Ansage für die Hotline" for branch in range(52)],
    )
    review_by_api(server, ids[50])
    page, watch = open_page(server)
    second_page = "**/v1/requests?*offset=50*"

    # J at the edge of the inbox page, then I before the next page came: the inbox stays.
    page.goto(f"{server.url}/#/request/{ids[49]}")
    wait_for_request(page, ids[49])
    assert page.locator("#req-pos").inner_text() == "50 of 51"
    held = hold(page, second_page)
    page.keyboard.press("j")
    page.keyboard.press("i")  # the inbox at the page the step went to
    page.wait_for_url(re.compile(r"#/inbox\?page=2$"))
    wait_for_held(page, held, 2, "offset=50")  # the step's page, then the inbox's
    assert len(held) == 2
    let_through(page, held, "offset=50")
    let_through(page, held, "offset=50")
    page.unroute(second_page)
    assert page.url.endswith("#/inbox?page=2")
    assert page.locator("#view-inbox").is_visible()

    # Shift+J scanning the next page, then T: the Try page stays.
    page.goto(f"{server.url}/#/request/{ids[49]}?status=all")
    wait_for_request(page, ids[49])
    page.wait_for_function("() => document.getElementById('req-pos').textContent === '50 of 52'")
    held = hold(page, second_page)
    page.keyboard.press("Shift+J")
    page.keyboard.press("t")
    page.wait_for_url(re.compile(r"#/try$"))
    let_through(page, held, "offset=50")
    page.unroute(second_page)
    assert page.url.endswith("#/try")
    assert page.locator("#view-try").is_visible()
    watch.assert_clean(page)


def test_a_search_typed_just_before_leaving_the_inbox_does_not_rewrite_the_address(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    de, en = intake(server, GERMAN)["id"], intake(server, ENGLISH)["id"]
    page, watch = open_page(server)
    wait_for_list(page, [de, en])
    page.get_by_label("Search").fill("hold music")
    page.get_by_role("link", name="Try a request").click()  # within the search's 300 ms
    page.wait_for_timeout(600)
    assert page.url.endswith("#/try")
    assert page.locator("#view-try").is_visible()
    page.go_back()  # the inbox as it was: the search was never read
    wait_for_list(page, [de, en])
    assert page.url.endswith("#/inbox")
    watch.assert_clean(page)


def test_back_passes_the_sign_in_address_after_signing_in_again(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    en = intake(server, ENGLISH)["id"]
    page, watch = open_page(server)
    page.get_by_label("Language").select_option("en")
    page.locator(f"#inbox-rows tr[data-id='{en}']").get_by_role("link").click()
    wait_for_request(page, en)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"#/login$"))
    page.get_by_label("Reviewer name").fill(REVIEWER)
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    wait_for_request(page, en)
    seen = []
    for _ in range(3):
        page.go_back()
        page.wait_for_timeout(300)
        seen.append(page.evaluate("() => location.hash"))
    # The sign-in address gave way to the inbox (it sent Back forward again each time), then
    # come the request and the list it was opened from.
    assert seen == ["#/inbox?lang=en", f"#/request/{en}?lang=en", "#/inbox?lang=en"], seen
    watch.assert_clean(page)


def test_skip_to_content_and_discard_leave_the_focus_in_place(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    en = intake(server, ENGLISH)["id"]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{en}?lang=en")
    wait_for_request(page, en)
    page.wait_for_function("() => document.getElementById('req-pos').textContent === '1 of 1'")
    page.keyboard.press(LABEL_KEYS["broad_value"])

    # "Skip to content" moves the focus, and stays on the request, its list and its changes.
    page.locator("a.skip").focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.url.endswith(f"#/request/{en}?lang=en")
    assert page.evaluate("() => document.activeElement.id") == "main"
    assert page.locator("#req-draft").is_visible()
    assert page.locator("#toast").is_hidden()  # no "not saved" for a request not left

    # Discard hides its own button: the focus goes to the decision, not to the page.
    page.get_by_role("button", name="Discard changes").focus()
    page.keyboard.press("Enter")
    assert page.locator("#req-draft").is_hidden()
    assert page.evaluate("() => document.activeElement.closest('#label-toggles') !== null")
    watch.assert_clean(page)


def test_shift_j_on_the_same_page_places_the_request_in_the_list_as_it_is_now(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    _first, second, third = (
        intake(server, {**ENGLISH, "received_at": f"2025-01-14T0{hour}:30:00Z"})["id"]
        for hour in (7, 8, 9)
    )
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{third}?status=all")
    wait_for_request(page, third)
    page.wait_for_function("() => document.getElementById('req-pos').textContent === '1 of 3'")
    # A newer request arrives while this one is read: the list moves down by one.
    intake(server, {**ENGLISH, "received_at": "2025-01-14T10:30:00Z"})
    page.keyboard.press("Shift+J")
    wait_for_request(page, second)
    page.wait_for_function(
        "() => document.getElementById('req-pos').textContent === '3 of 4'", timeout=5_000
    )
    assert page.get_by_role("button", name="Next →").is_enabled()
    watch.assert_clean(page)


def test_an_inbox_list_that_cannot_be_read_does_not_show_another_under_its_filters(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    de, en = intake(server, GERMAN)["id"], intake(server, ENGLISH)["id"]
    page, _ = open_page(server)
    page.get_by_label("Language").select_option("de")
    wait_for_list(page, [de])
    problem = {"title": "Service unavailable", "status": 503, "detail": "The inbox store is busy."}

    def busy(route: Any) -> None:
        route.fulfill(status=503, content_type="application/problem+json", body=json.dumps(problem))

    # The same list read again and refused: what is shown stays, with the error.
    page.route("**/v1/requests?*", busy)
    page.get_by_role("button", name="Refresh").click()
    page.locator("#inbox-error").filter(has_text="busy").wait_for()
    assert listed(page) == [de]

    # Another list (Back to all languages, English chosen) refused: the German rows are not
    # shown under it, nor counted.
    page.go_back()
    page.wait_for_url(re.compile(r"#/inbox$"))
    page.wait_for_function("() => !document.querySelectorAll('#inbox-rows tr').length")
    page.get_by_label("Language").select_option("en")
    page.wait_for_url(re.compile(r"#/inbox\?lang=en$"))
    page.locator("#inbox-error").filter(has_text="busy").wait_for()
    assert listed(page) == []
    assert page.locator("#inbox-table").is_hidden()
    assert page.locator("#inbox-empty").is_hidden()  # not "Nothing here" either
    assert page.locator("#inbox-count").inner_text() == ""
    page.keyboard.press("Enter")  # no row of the list before to open
    page.wait_for_timeout(300)
    assert page.url.endswith("#/inbox?lang=en")
    page.unroute("**/v1/requests?*", busy)
    page.get_by_role("button", name="Refresh").click()
    wait_for_list(page, [en])
    assert page.locator("#inbox-error").is_hidden()


def test_a_decision_saved_while_the_reviewer_went_elsewhere_leaves_them_there(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    first, second, third = (
        intake(server, {**ENGLISH, "received_at": f"2025-01-14T0{hour}:30:00Z"})["id"]
        for hour in (7, 8, 9)
    )
    page, watch = open_page(server)
    toast = page.locator("#toast")

    # Saved while the reviewer went to the inbox: the inbox stays, and shows it decided.
    page.goto(f"{server.url}/#/request/{third}")
    wait_for_request(page, third)
    # Routes set well before the call they hold: once, one set just before the keypress
    # missed the call (saved unheld, on a busy machine).
    held = hold(page, "**/v1/requests/*/review")
    page.keyboard.press(LABEL_KEYS["broad_value"])
    page.keyboard.press("s")
    page.keyboard.press("i")
    page.wait_for_url(re.compile(r"#/inbox$"))
    let_through(page, held, "/review")
    toast.filter(has_text=f"Saved review of #{third}").wait_for()
    wait_for_list(page, [second, first])
    assert page.url.endswith("#/inbox")
    assert page.locator("#inbox-rows .chip.draft").count() == 0
    page.unroute("**/v1/requests/*/review")

    # Refused (erased meanwhile) after the reviewer opened another request: that one stays
    # on screen, and the toast says which was not saved.
    page.locator(f"#inbox-rows tr[data-id='{second}']").get_by_role("link").click()
    wait_for_request(page, second)
    held = hold(page, "**/v1/requests/*/review")
    page.keyboard.press(LABEL_KEYS["broad_value"])
    gone = {"title": "Gone", "status": 410, "detail": f"Request {second} was erased."}
    page.keyboard.press("s")
    page.goto(f"{server.url}/#/request/{first}")
    wait_for_request(page, first)
    assert len(held) == 1
    with page.expect_response(lambda response: "/review" in response.url):
        held.pop(0).fulfill(
            status=410, content_type="application/problem+json", body=json.dumps(gone)
        )
    toast.filter(has_text=f"#{second} was not saved").wait_for()
    assert page.locator("#req-body").is_visible()
    assert page.locator("#req-error").is_hidden()
    assert page.locator("#req-h").inner_text() == f"Request #{first}"
    assert page.url.endswith(f"#/request/{first}")
    watch.failed.clear()  # the 410 above
    watch.assert_clean(page)


def test_next_past_a_page_that_emptied_meanwhile_stays_on_the_last_request(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    newest_first = intake_many(
        server, [f"Standort {branch}: Ansage vor der Warteschlange ändern" for branch in range(51)]
    )
    last_of_first_page, only_of_second = newest_first[49:]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{last_of_first_page}")
    wait_for_request(page, last_of_first_page)
    page.wait_for_function("() => document.getElementById('req-pos').textContent === '50 of 51'")
    review_by_api(server, only_of_second)  # the second page is empty now

    # J finds no page after: the list read is the first page, where this one is the last; it
    # does not go on to the first request of the list.
    page.keyboard.press("j")
    page.wait_for_function(
        "() => document.getElementById('req-pos').textContent === '50 of 50'", timeout=5_000
    )
    assert page.locator("#req-h").inner_text() == f"Request #{last_of_first_page}"
    assert page.url.endswith(f"#/request/{last_of_first_page}")
    assert page.get_by_role("button", name="Next →").is_disabled()
    watch.assert_clean(page)


def busy_inbox(route: Any) -> None:
    problem = {"title": "Service unavailable", "status": 503, "detail": "The inbox store is busy."}
    route.fulfill(status=503, content_type="application/problem+json", body=json.dumps(problem))


def sign_in(page: Any, name: str) -> None:
    page.get_by_label("Reviewer name").fill(name)
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()


def test_a_save_whose_inbox_cannot_be_read_after_does_not_claim_nothing_is_pending(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    older, newer = intake(server, ENGLISH)["id"], intake(server, GERMAN)["id"]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{newer}")
    wait_for_request(page, newer)
    page.route("**/v1/requests?*", busy_inbox)  # the list read after the save is refused

    page.get_by_role("button", name="Save my decision").click()
    toast = page.locator("#toast").filter(has_text=f"Saved review of #{newer}")
    toast.wait_for()
    said = toast.inner_text()
    assert "inbox list could not be refreshed" in said and "The inbox store is busy." in said
    assert "All pending requests are decided" not in said  # #older is pending: nobody knows
    assert stored(server, newer)["status"] == "reviewed"
    assert stored(server, older)["status"] == "pending"
    # The inbox it goes back to says why it shows no list.
    page.wait_for_url(re.compile(r"#/inbox$"))
    page.locator("#inbox-error").filter(has_text="busy").wait_for()
    page.unroute("**/v1/requests?*", busy_inbox)
    page.get_by_role("button", name="Refresh").click()
    wait_for_list(page, [older])
    watch.failed.clear()  # the 503s above
    watch.assert_clean(page)


def test_the_last_pending_request_a_filter_shows_does_not_claim_all_are_decided(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    english, german = intake(server, ENGLISH)["id"], intake(server, GERMAN)["id"]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{german}?lang=de")
    wait_for_request(page, german)

    page.get_by_role("button", name="Save my decision").click()
    toast = page.locator("#toast").filter(has_text=f"Saved review of #{german}")
    toast.wait_for()
    said = toast.inner_text()
    assert "No pending request is left among those the filters show." in said
    assert "All pending requests are decided" not in said  # the English one is pending
    assert stored(server, english)["status"] == "pending"
    page.wait_for_url(re.compile(r"#/inbox\?lang=de$"))
    watch.assert_clean(page)


def test_changes_made_while_a_decision_is_saved_stay_unsaved(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    first, second, third = (
        intake(server, {**ENGLISH, "received_at": f"2025-01-14T0{hour}:30:00Z"})["id"]
        for hour in (7, 8, 9)
    )
    page, watch = open_page(server)
    note = page.locator("#req-draft")
    comment = page.locator("#decide-comment")
    toggle = page.locator("#label-toggles [data-label='broad_value']")

    # Typed on while it is saved: the page stays on the request, the review is stored as it
    # was sent, and the comment and label typed meanwhile are shown as not saved.
    page.goto(f"{server.url}/#/request/{third}")
    wait_for_request(page, third)
    page.keyboard.press(LABEL_KEYS["security"])
    held = hold(page, "**/v1/requests/*/review")
    page.keyboard.press("s")
    page.keyboard.press("c")
    page.keyboard.type("Typed while saving.")
    page.keyboard.press("Escape")
    page.keyboard.press(LABEL_KEYS["broad_value"])
    after_typing = toggle.get_attribute("aria-pressed")
    let_through(page, held, "/review")
    page.unroute("**/v1/requests/*/review")
    page.locator("#toast").filter(has_text="is not saved yet").wait_for()
    assert f"Saved review of #{third}" in page.locator("#toast").inner_text()
    assert page.url.endswith(f"#/request/{third}")
    wait_for_request(page, third)
    assert note.is_visible()
    assert comment.input_value() == "Typed while saving."
    assert toggle.get_attribute("aria-pressed") == after_typing
    review = stored(server, third)["review"]
    assert review["comment"] is None and "security" in review["labels"]
    assert page.locator("#req-current-review").is_visible()  # the review just saved
    # Saved again, they are stored, and the next request opens.
    page.get_by_role("button", name="Save my decision").click()
    wait_for_request(page, second)
    assert stored(server, third)["review"]["comment"] == "Typed while saving."

    # Typed on, then left for the inbox before the answer came: kept as a draft there.
    held = hold(page, "**/v1/requests/*/review")
    page.keyboard.press("s")
    page.keyboard.press("c")
    page.keyboard.type("Ask Jakob.")
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.wait_for_url(re.compile(r"#/inbox$"))
    let_through(page, held, "/review")
    page.unroute("**/v1/requests/*/review")
    page.locator("#toast").filter(has_text=f"Saved review of #{second}").wait_for()
    assert "kept as a draft" in page.locator("#toast").inner_text()
    assert stored(server, second)["review"]["comment"] is None
    page.goto(f"{server.url}/#/request/{second}")
    wait_for_request(page, second)
    assert comment.input_value() == "Ask Jakob."
    assert "brought back" in note.inner_text()
    assert first  # still pending, untouched
    watch.assert_clean(page)


def test_drafts_kept_through_a_refused_key_go_only_to_the_same_reviewer(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    server = start_web()
    older, newer = intake(server, ENGLISH)["id"], intake(server, GERMAN)["id"]
    page, watch = open_page(server)
    comment = page.locator("#decide-comment")
    note = page.locator("#req-draft")
    refused = {"title": "Unauthorized", "status": 401, "detail": "Invalid API key."}

    def refuse(route: Any) -> None:
        route.fulfill(status=401, content_type="application/problem+json", body=json.dumps(refused))

    def refused_on_save() -> None:
        page.route("**/v1/requests/*/review", refuse)
        page.get_by_role("button", name="Save my decision").click()
        page.wait_for_url(re.compile(r"#/login$"))
        page.unroute("**/v1/requests/*/review", refuse)

    # A draft left on another request, and changes on screen, when the key is refused.
    page.goto(f"{server.url}/#/request/{older}")
    wait_for_request(page, older)
    page.keyboard.press("c")
    page.keyboard.type("Older: ask the partner.")
    page.keyboard.press("Escape")
    page.goto(f"{server.url}/#/request/{newer}")
    wait_for_request(page, newer)
    page.keyboard.press("c")
    page.keyboard.type("Newer: check the pentest.")
    page.keyboard.press("Escape")
    refused_on_save()
    kept = page.locator("#login-drafts")
    assert "2 request(s)" in kept.inner_text() and REVIEWER in kept.inner_text()

    # The same reviewer signs in again: both come back.
    sign_in(page, REVIEWER)
    wait_for_request(page, newer)
    assert comment.input_value() == "Newer: check the pentest."
    assert note.is_visible()
    assert kept.is_hidden()

    # Refused again, and someone else signs in in this tab: they see none of it.
    refused_on_save()
    sign_in(page, "Kim Berger")
    wait_for_request(page, newer)
    assert comment.input_value() == ""
    assert note.is_hidden()
    page.locator("#toast").filter(has_text="were discarded").wait_for()
    page.keyboard.press("i")
    wait_for_list(page, [newer, older])
    assert page.locator("#inbox-rows .chip.draft").count() == 0
    page.goto(f"{server.url}/#/request/{older}")
    wait_for_request(page, older)
    assert comment.input_value() == ""

    # Nor does the first reviewer, signing in after them: the drafts are gone, and signing
    # out asked nothing (there was nothing to lose).
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"#/login$"))
    sign_in(page, REVIEWER)
    wait_for_request(page, older)
    assert comment.input_value() == ""
    assert all(stored(server, i)["review"] is None for i in (older, newer))
    watch.failed.clear()  # the 401s above
    watch.assert_clean(page)


def test_waiting_for_a_request_does_not_pass_on_the_one_shown_before(
    start_web: Callable[..., ThreadedServer], open_page: Callable[..., tuple[Any, Watch]]
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    server = start_web()
    created = intake(server, ENGLISH)["id"]
    page, watch = open_page(server)
    page.goto(f"{server.url}/#/request/{created}")
    wait_for_request(page, created)
    held = hold(page, f"**/v1/requests/{created}")

    # The same request opened again from the inbox, still being read: its heading is left
    # from before, but it is not open yet.
    page.keyboard.press("i")
    page.wait_for_url(re.compile(r"#/inbox$"))
    page.goto(f"{server.url}/#/request/{created}")
    page.set_default_timeout(1_000)
    with pytest.raises(PlaywrightTimeout):
        wait_for_request(page, created)
    page.set_default_timeout(15_000)
    let_through(page, held, f"/v1/requests/{created}")
    wait_for_request(page, created)

    # The same request under another list, still being read: not open under it yet either.
    page.goto(f"{server.url}/#/request/{created}?status=all")
    page.set_default_timeout(1_000)
    with pytest.raises(PlaywrightTimeout):
        wait_for_request(page, created)
    page.set_default_timeout(15_000)
    let_through(page, held, f"/v1/requests/{created}")
    wait_for_request(page, created)
    page.unroute(f"**/v1/requests/{created}")
    assert page.url.endswith(f"#/request/{created}?status=all")
    watch.assert_clean(page)
