"""The fast feature paths must equal the plain formulas: TF-IDF, cosine, exact evidence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import model.estimator
import model.text
from model.estimator import TrainingIndex, TriageEstimator
from model.text import Analysis, analyze
from tests.conftest import SAMPLES
from training.data import load_samples

EDGE_TEXTS = ("", "xq zv", "Bitte 2FA für das Admin-Portal")  # empty, unknown words, short


def _analyses(n: int) -> list[Analysis]:
    """The first ``n`` eval requests, then ``EDGE_TEXTS`` (the empty text at index ``n``)."""
    texts = [s.text for s in load_samples(SAMPLES / "eval.jsonl").samples[:n]]
    return [analyze(t) for t in [*texts, *EDGE_TEXTS]]


@pytest.mark.parametrize("slice_rows", [2048, 7], ids=["one slice", "slices of 7 rows"])
def test_transform_equals_scikit_learn(
    small_estimator: TriageEstimator, slice_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model.estimator, "_TRANSFORM_ROWS", slice_rows)
    features = small_estimator.features
    analyses = _analyses(60)
    blocks = [
        features.word.transform([a.word_features for a in analyses]) * features.weights[0],
        features.char.transform([a.char_features for a in analyses]) * features.weights[1],
    ]
    reference = sp.csr_matrix(sp.hstack(blocks))
    norms = np.sqrt(np.asarray(reference.multiply(reference).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    reference = sp.csr_matrix(sp.diags(1.0 / norms) @ reference)
    matrix = features.transform(analyses)
    resorted = matrix.copy()
    resorted.has_sorted_indices = False
    resorted.sort_indices()  # the fast path promises sorted columns: check, do not trust the flag
    assert np.array_equal(resorted.indices, matrix.indices)
    assert abs(matrix - reference).max() < 1e-12


def test_compare_equals_plain_cosine(small_estimator: TriageEstimator) -> None:
    """One pass serves topic similarity and neighbours: both must equal the plain formulas."""
    analyses = _analyses(20)
    matrix = small_estimator.transform(analyses)
    index = small_estimator.index
    comparison = small_estimator.compare(matrix, 4)

    # SciPy's product adds the same terms in the same order: the very same sums.
    cosine = (matrix @ index.matrix_t).toarray()
    order = np.argsort(-cosine, axis=1, kind="stable")[:, :4]
    assert np.array_equal(comparison.similarity, np.take_along_axis(cosine, order, axis=1))
    assert np.array_equal(comparison.nearest, order)
    topical = small_estimator.topic_vectors(matrix) @ small_estimator.topic_vectors(index.matrix).T
    topic = topical.toarray().max(axis=1)
    assert np.allclose(comparison.topic, topic, atol=1e-12)
    assert comparison.topic[20] == 0.0  # an empty text is like nothing
    assert np.array_equal(small_estimator.compare(matrix, 0).topic, comparison.topic)


def test_across_languages_equals_a_plain_search() -> None:
    """Only the other language of German and English, at or above the threshold, best first."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    langs = ["de", "en", "en", "fr"] * 10
    index = TrainingIndex(
        matrix=sp.csr_matrix((40, 1)),
        ids=[f"r{i}" for i in range(40)],
        snippets=[""] * 40,
        labels=[()] * 40,
        langs=langs,
        novelty_threshold=0.0,
        concepts=vectors,
    )
    queries = np.vstack([vectors[:6], np.zeros((1, 8), dtype=np.float32)])
    query_langs = [*langs[:6], "de"]
    found = index.across_languages(queries, query_langs, k=3, threshold=0.2)
    for query, lang, hits in zip(queries, query_langs, found, strict=True):
        other = {"de": "en", "en": "de"}.get(lang)
        sims = vectors @ query
        expected = sorted(
            ((float(sims[j]), j) for j in range(40) if langs[j] == other and sims[j] >= 0.2),
            reverse=True,
        )[:3]
        assert [(j, pytest.approx(s, abs=1e-6)) for s, j in expected] == hits
    assert found[3] == [] and found[6] == []  # French, and a text of no known word
    assert any(found[:3])  # the random vectors give the check something to compare


@pytest.mark.parametrize("block", [256, 7], ids=["one block", "blocks of 7 rows"])
def test_contributions_add_up_to_the_score_and_do_not_depend_on_the_batch(
    small_estimator: TriageEstimator, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evidence is exact: a text's contributions sum to Platt's a times w · x, per label."""
    monkeypatch.setattr(model.estimator, "_EVIDENCE_ROWS", block)
    analyses = _analyses(30)
    matrix = small_estimator.transform(analyses)
    coef, _, platt_a, _ = small_estimator._linear
    expected = platt_a * np.asarray(matrix @ coef)
    together = small_estimator.contributions(analyses, matrix)
    for i, (spans, contributions) in enumerate(together):
        assert contributions.shape == (len(analyses[i].tokens), len(small_estimator.labels))
        assert len(spans) == len(analyses[i].tokens)
        assert np.allclose(contributions.sum(axis=0), expected[i], atol=1e-12)
        alone_spans, alone = small_estimator.contributions([analyses[i]], matrix[i])[0]
        assert alone_spans == spans
        assert np.allclose(alone, contributions, atol=1e-15)
    assert together[30][1].shape[0] == 0  # the empty text has no units


# Exceptions, contractions, URLs, units, emoji, odd whitespace, a long chunk: spaCy's tokenizer
# treats each differently, and the remembered chunks must split them exactly the same way.
TOKENIZER_TEXTS = (
    "z.B. ca. 5km (bzw. 10km)… don't can't I'm it's St. Martin, Tel.: +49 (0)89/123-456",
    "a\u00a0b\u200bc\u2028d e\u3000f  g\n\nh\tI\r\nj",
    "😀😀 ok:) <3 =) „Anführungszeichen“ «Guillemets» ....... !!!??? ---",
    "http://example.com/a?b=c, www.foo.de. U.S.A. e.g. i.e. etc. 10°C. 5€ 12%",
    "x" * 3000,
)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_remembered_chunks_split_as_spacy_splits_the_whole_text(
    lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [s.text for s in load_samples(SAMPLES / "eval.jsonl").samples[:80]]
    texts += TOKENIZER_TEXTS
    # A tiny memo, so it is also started afresh while the texts are split.
    monkeypatch.setattr(model.text, "_CHUNK_WORDS", {"de": {}, "en": {}})
    monkeypatch.setattr(model.text, "_MAX_CHUNKS", 40)
    nlp = model.text._nlp(lang)
    largest = 0
    for text in texts * 2:  # the second round reads remembered chunks only
        reference = []
        for token in nlp.make_doc(text):
            for start, end in model.text._hyphen_parts(text, token.idx, token.idx + len(token)):
                form = model.text._word_form(text[start:end])
                if form is not None:
                    reference.append((form, start, end))
        assert model.text._words(text, lang) == reference, text[:80]
        largest = max(largest, len(text.split()))
        assert len(model.text._CHUNK_WORDS[lang]) <= max(40, largest)


def test_hyphenated_words_are_read_alike_in_both_languages_and_spellings() -> None:
    # spaCy's English tokenizer splits at the hyphen and its German one does not; the model
    # splits in both, so a term both languages use is the same words in either.
    german = analyze("Bitte 2FA für das Admin-Portal, auch für die Hunt-Group-Ansage")
    english = analyze("Please add 2FA to the Admin-Portal, and to the hunt-group greeting")
    assert (german.lang, english.lang) == ("de", "en")
    assert [t.lower for t in german.tokens][:4] == ["bitte", "2fa", "admin", "portal"]
    assert {"admin", "portal", "hunt", "group"} <= {t.lower for t in english.tokens}
    assert {"hunt", "group", "ansage"} <= {t.lower for t in german.tokens}
    # Each part keeps exact offsets into the text.
    assert all(german.text[t.start : t.end].lower() == t.lower for t in german.tokens)
    # Hyphen or space: the same words, word pairs and character n-grams.
    spaced = analyze("Bitte 2FA für das Admin Portal, auch für die Hunt Group Ansage")
    assert spaced.word_features == german.word_features
    assert spaced.char_features == german.char_features
    # A dash between words is no hyphen.
    dash = analyze("Ruhezeiten - bitte prüfen – dringend")
    assert [t.lower for t in dash.tokens] == ["ruhezeiten", "bitte", "prüfen", "dringend"]


def test_a_chunk_longer_than_any_word_is_read_in_word_runs_not_by_spacy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # spaCy's tokenizer needs about 37 s for 20,000 asterisks in one chunk, and the service's
    # model thread would wait that long; no chunk that long may reach it.
    monkeypatch.setattr(model.text, "_CHUNK_WORDS", {"de": {}, "en": {}})
    nlp = model.text._nlp("en")
    seen: list[str] = []
    make_doc = nlp.make_doc
    monkeypatch.setattr(nlp, "make_doc", lambda text: seen.append(text) or make_doc(text))
    log = '{"level":"warn","request_url":"http://169.254.169.254/latest/meta-data/iam/' + "x" * 60
    text = f"Please block this: {log} and *{'*' * 20_000}* too"
    analysis = analyze(text)
    assert all(len(chunk) <= model.text._LONG_CHUNK for joined in seen for chunk in joined.split())
    forms = [t.lower for t in analysis.tokens]
    assert forms[:2] == ["block", "level"]  # "please" and "this" are stop words
    assert {"warn", "request_url", "meta", "data", "iam"} <= set(forms)
    words = [t for t in analysis.tokens if t.lower != "<num>"]  # 169, 254: numbers
    assert all(text[t.start : t.end].lower() == t.lower for t in words)


@pytest.mark.parametrize("wrap", ["{}", "({}).", "<{}>,", "'{}'"])
def test_a_long_link_is_one_word_as_spacy_keeps_a_short_one(wrap: str) -> None:
    # Split into its runs, a 200-character link read as "http", "x", "org", …: four words, so
    # a text that is only a link escaped the too_short flag and was scored as a request.
    for link in (
        "http://x.org/" + "a" * 40,
        "https://x.org/" + "a" * 200,
        "www.x.org/" + "b" * 150,
    ):
        text = "Bitte " + wrap.format(link) + " prüfen"
        tokens = analyze(text).tokens
        assert [t.lower for t in tokens] == ["bitte", link.lower(), "prüfen"], text
        (url,) = (t for t in tokens if t.lower == link.lower())
        assert text[url.start : url.end] == link
