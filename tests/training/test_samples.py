"""The shipped sample data: schema, the counts the project promises, and no eval leakage."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from model.estimator import LABELS
from tests.conftest import SAMPLES
from training.data import load_samples

MINIMUMS = {
    "train.jsonl": {"n": 800, "lang": 350, "label": 180, "none": 100, "multi": 80},
    "eval.jsonl": {"n": 240, "lang": 105, "label": 54, "none": 30, "multi": 24},
    "challenge.jsonl": {"n": 160, "lang": 80, "label": 28, "none": 30, "multi": 36},
    "challenge_public.jsonl": {"n": 120, "lang": 60, "label": 36, "none": 30, "multi": 25},
    "challenge_public2.jsonl": {"n": 120, "lang": 60, "label": 39, "none": 28, "multi": 27},
    "challenge_public3.jsonl": {"n": 120, "lang": 60, "label": 39, "none": 28, "multi": 29},
    "challenge_stories.jsonl": {"n": 60, "lang": 30, "label": 12, "none": 12, "multi": 8},
    "challenge_blind.jsonl": {"n": 120, "lang": 55, "label": 36, "none": 25, "multi": 24},
    "challenge_blind2.jsonl": {"n": 120, "lang": 60, "label": 38, "none": 28, "multi": 29},
    "challenge_blind3.jsonl": {"n": 120, "lang": 60, "label": 40, "none": 27, "multi": 26},
    "challenge_blind4.jsonl": {"n": 120, "lang": 60, "label": 40, "none": 26, "multi": 28},
}


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_sample_file_has_schema_and_counts(name: str) -> None:
    samples = load_samples(SAMPLES / name).samples  # validates schema, labels, langs, ids
    need = MINIMUMS[name]
    assert len(samples) >= need["n"]
    for lang in ("de", "en"):
        assert sum(s.lang == lang for s in samples) >= need["lang"], lang
    for label in LABELS:
        assert sum(label in s.labels for s in samples) >= need["label"], label
    assert sum(not s.labels for s in samples) >= need["none"]
    assert sum(len(s.labels) >= 2 for s in samples) >= need["multi"]


def test_sample_records_keep_their_extra_fields() -> None:
    sample = load_samples(SAMPLES / "train.jsonl").samples[0]
    assert "voice" in sample.to_record()


@pytest.mark.parametrize(
    ("held_out", "seen"),
    [
        ("eval.jsonl", ["train.jsonl"]),
        ("challenge.jsonl", ["train.jsonl", "eval.jsonl"]),
        ("challenge_public.jsonl", ["train.jsonl", "eval.jsonl", "challenge.jsonl"]),
        ("challenge_public2.jsonl", ["train.jsonl", "eval.jsonl", "challenge_public.jsonl"]),
        (
            "challenge_public3.jsonl",
            ["train.jsonl", "eval.jsonl", "challenge_public.jsonl", "challenge_public2.jsonl"],
        ),
        ("challenge_stories.jsonl", ["train.jsonl", "eval.jsonl", "challenge_public3.jsonl"]),
        ("challenge_blind.jsonl", ["train.jsonl", "eval.jsonl", "challenge_stories.jsonl"]),
        ("challenge_blind2.jsonl", ["train.jsonl", "eval.jsonl", "challenge_blind.jsonl"]),
        ("challenge_blind3.jsonl", ["train.jsonl", "eval.jsonl", "challenge_blind2.jsonl"]),
        ("challenge_blind4.jsonl", ["train.jsonl", "eval.jsonl", "challenge_blind3.jsonl"]),
    ],
)
def test_no_held_out_text_is_a_near_duplicate_of_a_seen_one(held_out: str, seen: list[str]) -> None:
    texts, vectors = _char_ngram_rows()
    known = [text for name in seen for text in texts[name]]
    similarity = (vectors[held_out] @ sp.vstack([vectors[name] for name in seen]).T).toarray()
    worst = np.unravel_index(similarity.argmax(), similarity.shape)
    evaluation = load_samples(SAMPLES / held_out).samples
    assert similarity.max() <= 0.8, (
        f"{held_out} {evaluation[worst[0]].id} is a near-duplicate of "
        f"{known[worst[1]][:80]!r} (cosine {similarity.max():.2f})"
    )


@cache
def _char_ngram_rows() -> tuple[dict[str, list[str]], dict[str, sp.csr_matrix]]:
    """Every sample file's texts and their character n-gram TF-IDF rows (L2-normalised), in
    one space fitted on all of them: fitted once, not once per pair of files compared."""
    texts = {name: [s.text for s in load_samples(SAMPLES / name).samples] for name in MINIMUMS}
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))
    vectorizer.fit([text for file_texts in texts.values() for text in file_texts])
    return texts, {name: vectorizer.transform(file_texts) for name, file_texts in texts.items()}


def test_each_translation_pairs_with_a_challenge_request_in_the_other_language() -> None:
    originals = {s.id: s for s in load_samples(SAMPLES / "challenge.jsonl").samples}
    translations = load_samples(SAMPLES / "challenge_translated.jsonl").samples
    sources = [t.extra["source_id"] for t in translations]
    assert sorted(sources) == sorted(originals)  # every challenge request, once
    for translation in translations:
        original = originals[translation.extra["source_id"]]
        assert translation.labels == original.labels, translation.id
        assert translation.lang != original.lang, translation.id


def test_translations_in_train_have_their_original_in_the_other_language() -> None:
    """A translated training request keeps its original's labels and is split with it."""
    samples = load_samples(SAMPLES / "train.jsonl").samples
    by_id = {s.id: s for s in samples}
    translations = [s for s in samples if "source_id" in s.extra]
    assert len(translations) >= 200
    for translation in translations:
        original = by_id[translation.extra["source_id"]]
        assert "source_id" not in original.extra, translation.id  # one level, no chains
        assert translation.labels == original.labels, translation.id
        assert translation.lang != original.lang, translation.id
