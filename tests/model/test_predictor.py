"""Suggestions: evidence offsets, batch consistency, awkward inputs, outcome rules."""

from __future__ import annotations

import gc
import itertools
import json

import pytest

from model import TriageModel
from model.outcome import decide_outcome
from model.predictor import _merge_spans, _phrase_totals
from model.suggestion import OUTCOMES, LabelScore
from model.text import analyze, detect_lang
from tests.conftest import CROSS_LANGUAGE_PAIR

AWKWARD = {
    "empty": "",
    "whitespace": " \n\t  ",
    "huge": "Bitte 2FA für das Admin-Portal. " * 3200,  # about 100,000 characters
    "french": "Nous voulons transférer les appels vers un autre numéro le week-end, merci",
    "emoji": "🔥🔥 pls fix 🙏🙏 📞➡️📵",
    "control": "Passwort\x00 wird im\x07 Klartext\x1b angezeigt",
}


def test_every_evidence_span_is_the_exact_substring(trained_model: TriageModel) -> None:
    texts = [
        "Bitte 2FA für das Admin-Portal!!",
        "the intern who left in May can still listen to our voicemails",
        "Kunde möchte   andere Wartemusik,\nund zwar pro Queue (Hotline-Queue).",
        "Ümläute & ß: Aufzeichnungen der Geschäftsführung sieht jeder im Büro 🙈",
    ]
    for text, suggestion in zip(texts, trained_model.suggest_many(texts), strict=True):
        spans = [e for ls in suggestion.per_label for e in ls.evidence]
        assert spans, text
        for evidence in spans:
            assert text[evidence.start : evidence.end] == evidence.text


def test_evidence_spans_of_one_label_never_overlap(trained_model: TriageModel) -> None:
    text = "Please add a native HubSpot integration with automatic call logging for all customers"
    for label in trained_model.suggest(text).per_label:
        spans = sorted((e.start, e.end) for e in label.evidence)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def _word_totals(model: TriageModel, text: str, label: str) -> dict[str, float]:
    """Each word's contribution to ``label`` over all its places, straight from the estimator."""
    analysis = analyze(text, model.estimator.max_chars)
    matrix = model.estimator.transform([analysis])
    _, contributions = model.estimator.contributions([analysis], matrix)[0]
    column = model.labels.index(label)
    totals: dict[str, float] = {}
    for token, row in zip(analysis.tokens, contributions.tolist(), strict=True):
        totals[token.lower] = totals.get(token.lower, 0.0) + row[column]
    return totals


def test_a_repeated_phrase_is_one_item_at_its_first_place_with_all_its_weight() -> None:
    text = "Reset password. Password reset. reset PASSWORD, and more"
    words = ["reset", "password", "password", "reset", "reset", "password", "more"]
    spans = [(0, 5), (6, 14), (16, 24), (25, 30), (32, 37), (38, 46), (52, 56)]
    weights = [0.5, 1.0, 0.1, 0.1, 0.5, 1.0, -0.2]
    phrases = _phrase_totals(_merge_spans(text, spans, weights, words))
    # Case aside, the same words in the same order are one phrase; "password" and "reset"
    # alone (too weak to join here) are phrases of their own.
    assert [(text[p.start : p.end], round(p.weight, 6)) for p in phrases] == [
        ("Reset password", 3.0),
        ("Password", 0.1),
        ("reset", 0.1),
        ("more", -0.2),
    ]
    assert sum(p.weight for p in phrases) == pytest.approx(sum(weights))


def test_a_repeated_word_is_ranked_by_what_all_its_places_weigh(
    trained_model: TriageModel,
) -> None:
    text = "Hello team. " + "Password. " * 12 + "Thanks for looking at the wallpaper."
    suggestion = trained_model.suggest(text)
    for ls in suggestion.per_label:
        quoted = [e.text.lower() for e in ls.evidence]
        assert len(quoted) == len(set(quoted)), (ls.label, quoted)
        assert 0 < len(quoted) <= trained_model.n_evidence
        assert all(text[e.start : e.end] == e.text for e in ls.evidence)
    security = suggestion.per_label[trained_model.labels.index("security")]
    top = security.evidence[0]
    assert (top.text, top.start) == ("Password", text.index("Password"))
    assert top.weight == round(_word_totals(trained_model, text, "security")["password"], 4)
    assert suggestion.rationale.count("'Password'") == 1
    assert "('Password'" in suggestion.rationale  # named first


def test_a_word_repeated_thousands_of_times_is_still_evidence(
    trained_model: TriageModel,
) -> None:
    # Shared among thousands of places, each place's share is far under the 0.01 floor.
    text = "xxxxxxxxxx" + " password " * 3000
    suggestion = trained_model.suggest(text)
    assert "truncated" in suggestion.flags
    security = suggestion.per_label[trained_model.labels.index("security")]
    top = security.evidence[0]
    assert (top.text, top.start) == ("password", text.index("password"))
    assert top.weight == round(_word_totals(trained_model, text, "security")["password"], 4)
    assert top.weight > 1
    assert "('password'" in suggestion.rationale


def test_batch_equals_one_by_one(trained_model: TriageModel) -> None:
    texts = ["Bitte 2FA für das Admin-Portal", "How do I set up holiday routing?", "", "Tetris"]
    assert trained_model.suggest_many(texts) == [trained_model.suggest(t) for t in texts]


def test_parallel_batch_equals_serial(trained_model: TriageModel) -> None:
    texts = [f"Anfrage {i}: Wartemusik pro Queue ändern?" for i in range(600)]
    assert trained_model.suggest_many(texts, explain=False, n_jobs=2) == (
        trained_model.suggest_many(texts, explain=False)
    )
    lines = trained_model.json_lines(texts, list(range(600)), explain=False, n_jobs=2)
    assert [json.loads(line)["id"] for line in lines] == list(range(600))


def test_a_batch_leaves_the_garbage_collector_as_it_found_it(trained_model: TriageModel) -> None:
    trained_model.suggest_many(["Bitte 2FA", "Wartemusik pro Queue"])
    assert gc.get_freeze_count() == 0
    gc.freeze()  # an application that froze its own objects keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        trained_model.suggest_many(["Bitte 2FA", "Wartemusik pro Queue"])
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


def test_without_explanations_the_reasons_are_left_out(trained_model: TriageModel) -> None:
    text = "Bitte 2FA für das Admin-Portal, wie bei der Telefonanlage"
    explained, plain = trained_model.suggest(text), trained_model.suggest(text, explain=False)
    assert explained.similar and explained.max_similarity is not None
    assert (plain.similar, plain.max_similarity, plain.ignored) == ([], None, [])
    assert all(not ls.evidence for ls in plain.per_label)
    assert plain.topic_similarity == explained.topic_similarity


def test_the_same_wish_in_the_other_language_is_among_the_similar(
    trained_model: TriageModel,
) -> None:
    """Words hardly match across languages: the concept space finds the other half of the
    past requests, after those found by words, never the same one twice."""
    link = trained_model.concept_link_similarity
    assert link is not None
    for text, other in ((CROSS_LANGUAGE_PAIR[0], "en"), (CROSS_LANGUAGE_PAIR[1], "de")):
        similar = trained_model.suggest(text).similar
        by_words = [s for s in similar if not s.cross_language]
        across = [s for s in similar if s.cross_language]
        assert similar == by_words + across
        assert 1 <= len(across) <= trained_model.n_across_languages
        assert all(s.lang == other and s.similarity >= link for s in across)
        scores = [s.similarity for s in across]
        assert scores == sorted(scores, reverse=True)
        assert len({s.id for s in similar}) == len(similar)
    plain = TriageModel(trained_model.estimator, "v", n_across_languages=0)
    assert not any(s.cross_language for s in plain.suggest(CROSS_LANGUAGE_PAIR[0]).similar)


def test_outcome_does_not_depend_on_explanations(trained_model: TriageModel) -> None:
    text = "Die Praktikantin, die im Mai gegangen ist, hört noch unsere Voicemails ab"
    with_evidence = trained_model.suggest(text)
    without = trained_model.suggest(text, explain=False)
    assert (with_evidence.outcome, with_evidence.scores) == (without.outcome, without.scores)
    assert all(not ls.evidence for ls in without.per_label)


@pytest.mark.parametrize("kind", sorted(AWKWARD))
def test_awkward_input_gets_a_flagged_suggestion(trained_model: TriageModel, kind: str) -> None:
    suggestion = trained_model.suggest(AWKWARD[kind])
    assert suggestion.outcome in OUTCOMES
    assert suggestion.model_version == trained_model.version
    assert set(suggestion.thresholds) == set(trained_model.labels)
    expected_flag = {
        "empty": "empty_text",
        "whitespace": "empty_text",
        "huge": "truncated",
        "french": "unsupported_language",
        "control": "control_characters",
    }.get(kind)
    if expected_flag:
        assert expected_flag in suggestion.flags
    if kind in ("empty", "whitespace", "french"):
        assert suggestion.outcome == "needs_review"


@pytest.mark.parametrize(
    "text",
    ["hi", "test", "Tetris", "Wartemusik?", "😀", "Hallo,\nGruß", "http://x.org/" + "a" * 19_980],
)
def test_one_word_or_none_goes_to_review(trained_model: TriageModel, text: str) -> None:
    # One word's scores are the model guessing: "test" read as security, "hi" as configurable.
    suggestion = trained_model.suggest(text)
    assert "too_short" in suggestion.flags
    assert suggestion.outcome == "needs_review"
    assert "too_short" not in trained_model.suggest("SRTP erzwingen").flags


def test_gibberish_is_novel_and_goes_to_review(trained_model: TriageModel) -> None:
    suggestion = trained_model.suggest("zxqv blorptastic quuxification wibble flarn")
    assert "novel" in suggestion.flags
    assert suggestion.outcome == "needs_review"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Bitte 2FA für das Admin-Portal", "de"),
        ("Wartemusik pro Queue?", "de"),
        ("Kunde möchte die Rufumleitung am Wochenende selbst schalten", "de"),
        ("SIP trunk failover - howto", "en"),
        ("Please add SSO with Okta for the admin portal", "en"),
        ("Nous voulons transférer les appels vers un autre numéro, merci", "other"),
        ("Chcemy przekierować połączenia na inny numer, dziękuję bardzo", "other"),
        ("", "other"),
        # "fa" in "2FA" is no Italian stop word, nor "a" in "mp3a".
        ("Admin-Portal ohne 2FA. Bitte 2FA einführen. 2FA ist Pflicht laut Versicherung.", "de"),
        ("2FA login: enforce 2FA, 2FA via app", "en"),
        # Umlauts typed as a letter and a combining mark (NFD), as pasted from a Mac.
        ("Bitte 2FA fu\u0308r das Admin-Portal und Sicherheitsu\u0308berpru\u0308fung", "de"),
        ("管理ポータルに二要素認証を追加してください", "other"),
        ("Пожалуйста, добавьте двухфакторную аутентификацию для портала", "other"),
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_half_a_surrogate_pair_cannot_break_a_suggestion(trained_model: TriageModel) -> None:
    # JSON's "\ud800" and Python strings can hold it; no UTF-8 output can.
    suggestion = trained_model.suggest("\ud800 Bitte 2FA für das Admin-Portal \udfff")
    record = json.dumps(suggestion.to_record("x"), ensure_ascii=False).encode("utf-8")
    assert "security" in json.loads(record)["labels"]
    quoted = [e.text for ls in suggestion.per_label for e in ls.evidence]
    assert quoted and all("\ud800" not in q and "\udfff" not in q for q in quoted)


@pytest.mark.parametrize(
    ("text", "denied", "word"),
    [
        ("no security issue, we only want another ringtone", True, "security"),
        ("Kein Sicherheitsproblem, nur eine andere Wartemusik bitte", True, "sicherheitsproblem"),
        ("This has nothing to do with security, just the logo", True, "security"),
        ("There is no 2FA on the admin portal, a real security risk", False, "security"),
        ("Ohne Passwort kommt jeder ins Portal", False, "passwort"),
    ],
)
def test_denials_of_a_security_concern_are_recognised(text: str, denied: bool, word: str) -> None:
    analysis = analyze(text)
    assert bool(analysis.denials) is denied
    # The words of a denial are no evidence for security: they are left out of the features.
    assert (word in {t.lower for t in analysis.tokens}) is not denied


def _label(label: str, score: float, threshold: float = 0.5, band: float = 0.1) -> LabelScore:
    return LabelScore(label, score, threshold, score >= threshold, abs(score - threshold) < band)


@pytest.mark.parametrize(
    ("scores", "flags", "outcome"),
    [
        ((0.9, 0.9, 0.9), [], "security_fix"),
        ((0.55, 0.9, 0.1), [], "security_fix"),  # uncertain msp cannot change a security fix
        ((0.9, 0.1, 0.9), [], "partner_configures"),
        ((0.1, 0.1, 0.9), [], "prioritize_broad_value"),
        ((0.1, 0.1, 0.1), [], "decline_limited_use"),
        ((0.1, 0.45, 0.1), [], "needs_review"),
        ((0.1, 0.1, 0.9), ["novel"], "needs_review"),
        ((0.1, 0.9, 0.1), ["unsupported_language"], "needs_review"),
    ],
)
def test_outcome_rules_follow_the_guide(scores, flags, outcome) -> None:
    names = ("msp_configurable", "security", "broad_value")
    per_label = [_label(n, s) for n, s in zip(names, scores, strict=True)]
    decision = decide_outcome(per_label, "en", flags, 0.05)
    assert decision.outcome == outcome
    assert decision.rationale.endswith(".")


def test_partner_outcome_with_broad_value_suggests_a_product_default() -> None:
    per_label = [
        _label("msp_configurable", 0.9),
        _label("security", 0.1),
        _label("broad_value", 0.9),
    ]
    assert "product default" in decide_outcome(per_label, "en", [], 0.5).rationale
    assert "Produkt-Standard" in decide_outcome(per_label, "de", [], 0.5).rationale


def test_a_reviewed_requests_sample_id_leads_back_to_the_request() -> None:
    from model import reviewed_request_id, reviewed_sample_id

    assert reviewed_request_id(reviewed_sample_id(42)) == 42
    for other in ("tr0042", "review-042", "review-", "review-4a", "review-\u0664\u0662", "x-42"):
        assert reviewed_request_id(other) is None, other
