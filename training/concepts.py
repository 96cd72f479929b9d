"""Fitting the German–English concept space (``model.concepts``) on the translation pairs.

A translation is a training request whose ``source_id`` names another request of the same
data in the other language. Each pair becomes one document of both texts' words; TF-IDF over
those documents, then a truncated SVD, gives the space. With fewer than ``MIN_PAIRS`` pairs
there is too little to align two vocabularies, and no space is fitted.

``evaluate_concept_space`` says what a space fitted this way finds on pairs it has not seen
(``config.cv_folds`` folds over the pairs): how many translations reach the link similarity,
how often the translation is the nearest text in the other language, and how many
cross-language pairs of *different* requests reach it. Those figures go into the manifest.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import KFold

from model.concepts import ConceptSpace, concept_words
from model.text import Analysis, identity_features
from training.config import TrainConfig
from training.data import Sample

MIN_PAIRS = 50


def translation_pairs(samples: list[Sample]) -> list[tuple[int, int]]:
    """(original, translation) row pairs: ``source_id`` names a request in another language."""
    row_of = {s.id: i for i, s in enumerate(samples)}
    pairs = []
    for i, sample in enumerate(samples):
        source = row_of.get(str(sample.extra.get("source_id") or ""))
        if source is not None and samples[source].lang != sample.lang:
            pairs.append((source, i))
    return pairs


def fit_concept_space(
    analyses: list[Analysis], pairs: list[tuple[int, int]], config: TrainConfig
) -> ConceptSpace | None:
    """The space fitted on ``pairs`` of ``analyses``; None when it is off or pairs are few."""
    if config.concept_dims == 0 or len(pairs) < MIN_PAIRS:
        return None
    docs = [concept_words(analyses[a]) + concept_words(analyses[b]) for a, b in pairs]
    vectorizer = TfidfVectorizer(
        analyzer=identity_features, min_df=config.concept_min_df, sublinear_tf=True
    )
    try:
        X = vectorizer.fit_transform(docs)
    except ValueError:  # no word occurs often enough
        return None
    dims = min(config.concept_dims, X.shape[0] - 1, X.shape[1] - 1)
    if dims < 1:
        return None
    svd = TruncatedSVD(dims, n_iter=7, random_state=config.seed).fit(X)
    return ConceptSpace(
        vocabulary={word: int(column) for word, column in vectorizer.vocabulary_.items()},
        idf=vectorizer.idf_.astype(np.float64),
        projection=np.ascontiguousarray(svd.components_.T, dtype=np.float32),
        link_similarity=config.concept_link_similarity,
    )


class PairCounts(NamedTuple):
    linked: int  # pairs whose translation reaches the link similarity
    nearest: int  # pairs whose translation is the most similar text in the other language
    different: int  # (original, another pair's translation) in different languages
    different_linked: int  # of those, reaching the link similarity


def pair_counts(
    sims: np.ndarray, langs_originals: list[str], langs_translations: list[str], link: float
) -> PairCounts:
    """Counts over ``sims`` of originals (rows) × translations (columns), pair i being (i, i)."""
    langs_a = np.array(langs_originals)[:, None]
    langs_b = np.array(langs_translations)[None, :]
    other = (langs_a != langs_b) & ~np.eye(len(sims), dtype=bool)
    own = np.diag(sims)
    best_other = np.where(other, sims, -np.inf).max(axis=1)
    return PairCounts(
        linked=int((own >= link).sum()),
        nearest=int((own > best_other).sum()),
        different=int(other.sum()),
        different_linked=int((sims[other] >= link).sum()),
    )


def evaluate_concept_space(
    analyses: list[Analysis], pairs: list[tuple[int, int]], config: TrainConfig
) -> dict[str, Any] | None:
    """Held-out figures of the space at ``config.concept_link_similarity``; None if unfitted."""
    folds = min(config.cv_folds, len(pairs) // 10)
    if config.concept_dims == 0 or len(pairs) < MIN_PAIRS or folds < 2:
        return None
    linked = nearest = unrelated = unrelated_total = 0
    splitter = KFold(folds, shuffle=True, random_state=config.seed)
    for train_idx, test_idx in splitter.split(pairs):
        space = fit_concept_space(analyses, [pairs[i] for i in train_idx], config)
        if space is None:
            return None
        held_out = [pairs[i] for i in test_idx]
        originals = space.vectors([analyses[a] for a, _ in held_out])
        translations = space.vectors([analyses[b] for _, b in held_out])
        counts = pair_counts(
            originals @ translations.T,
            [analyses[a].lang for a, _ in held_out],
            [analyses[b].lang for _, b in held_out],
            space.link_similarity,
        )
        linked += counts.linked
        nearest += counts.nearest
        unrelated += counts.different_linked
        unrelated_total += counts.different
    return {
        "pairs": len(pairs),
        "folds": folds,
        "link_similarity": config.concept_link_similarity,
        "translations_linked": round(linked / len(pairs), 4),
        "translation_nearest": round(nearest / len(pairs), 4),
        "different_requests_linked": round(unrelated / max(unrelated_total, 1), 5),
    }
