"""The fitted triage estimator: features, one calibrated linear scorer per label, evidence.

Each label's probability is ``sigmoid(a * (w · x + b) + c)``: a linear model on TF-IDF features
followed by Platt scaling fitted on out-of-fold scores. Because the whole chain is linear up to
the final sigmoid, every feature's share of the score is exact, and the evidence shown to a
reviewer is the real reason for the score rather than an approximation.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from model.text import Analysis, char_ngrams

LABELS: tuple[str, ...] = ("msp_configurable", "security", "broad_value")


@dataclass
class LabelScorer:
    """Linear weights of one label plus its Platt calibration."""

    coef: np.ndarray  # (n_features,)
    intercept: float
    platt_a: float
    platt_b: float

    def logit(self, features: sp.csr_matrix) -> np.ndarray:
        raw = features @ self.coef + self.intercept
        return self.platt_a * np.asarray(raw).ravel() + self.platt_b


@dataclass
class TrainingIndex:
    """The training requests, kept to show similar past requests and to spot novel ones."""

    matrix: sp.csr_matrix  # rows L2-normalised, same feature space as the scorers
    ids: list[str]
    snippets: list[str]
    labels: list[tuple[str, ...]]
    langs: list[str]
    novelty_threshold: float  # below this best similarity a request is unlike anything seen


@dataclass
class FeatureSpace:
    """Three TF-IDF blocks (words, character n-grams, concepts), weighted and stacked."""

    word: TfidfVectorizer
    char: TfidfVectorizer
    concept: TfidfVectorizer
    weights: tuple[float, float, float]
    offsets: tuple[int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        n_word = len(self.word.vocabulary_)
        n_char = len(self.char.vocabulary_)
        self.offsets = (0, n_word, n_word + n_char)

    @property
    def n_features(self) -> int:
        return self.offsets[2] + len(self.concept.vocabulary_)

    def transform(self, analyses: list[Analysis]) -> sp.csr_matrix:
        blocks = [
            self.word.transform([a.word_features for a in analyses]) * self.weights[0],
            self.char.transform([a.char_features for a in analyses]) * self.weights[1],
            self.concept.transform([a.concept_features for a in analyses]) * self.weights[2],
        ]
        stacked = sp.hstack(blocks, format="csr", dtype=np.float64)
        norms = np.sqrt(np.asarray(stacked.multiply(stacked).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ stacked)

    def occurrences(
        self, analysis: Analysis
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """Every feature occurrence in one text and the words it stands on.

        Returns, per entry, the feature column, the evidence unit (a word, or a concept
        phrase made only of stop words) and the share of the occurrence that unit gets
        (a bigram gives half to each word); and the ``(start, end)`` span of each unit.
        """
        columns: list[int] = []
        units: list[int] = []
        shares: list[float] = []
        word_vocab, char_vocab = self.word.vocabulary_, self.char.vocabulary_
        concept_vocab = self.concept.vocabulary_
        o_word, o_char, o_concept = self.offsets
        tokens = analysis.tokens
        spans = [(t.start, t.end) for t in tokens]

        def add(column: int, unit: int, share: float = 1.0) -> None:
            columns.append(column)
            units.append(unit)
            shares.append(share)

        for k, token in enumerate(tokens):
            col = word_vocab.get(token.lower)
            if col is not None:
                add(o_word + col, k)
            if k + 1 < len(tokens):
                col = word_vocab.get(f"{token.lower} {tokens[k + 1].lower}")
                if col is not None:
                    add(o_word + col, k, 0.5)
                    add(o_word + col, k + 1, 0.5)
            for gram in char_ngrams(token.lower):
                col = char_vocab.get(gram)
                if col is not None:
                    add(o_char + col, k)
        starts = [t.start for t in tokens]
        extra: dict[tuple[int, int], int] = {}
        for prefix, hits in (("c:", analysis.concepts), ("m:", analysis.markers)):
            for hit in hits:
                col = concept_vocab.get(prefix + hit.concept)
                if col is None:
                    continue
                lo = bisect_left(starts, hit.start)
                covered = [k for k in range(lo, len(tokens)) if tokens[k].start < hit.end]
                if not covered:
                    span = (hit.start, hit.end)
                    if span not in extra:
                        extra[span] = len(spans)
                        spans.append(span)
                    covered = [extra[span]]
                for k in covered:
                    add(o_concept + col, k, 1.0 / len(covered))
        return (
            np.asarray(columns, dtype=np.int64),
            np.asarray(units, dtype=np.int64),
            np.asarray(shares, dtype=np.float64),
            spans,
        )


@dataclass
class TriageEstimator:
    """Everything needed at inference time; built by ``training.pipeline``."""

    features: FeatureSpace
    scorers: dict[str, LabelScorer]
    thresholds: dict[str, float]
    index: TrainingIndex
    config: dict[str, object]
    max_chars: int = 20_000

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.scorers)

    def transform(self, analyses: list[Analysis]) -> sp.csr_matrix:
        return self.features.transform(analyses)

    def predict_proba(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Calibrated probability per row and label, columns in ``self.labels`` order."""
        logits = np.column_stack([s.logit(matrix) for s in self.scorers.values()])
        return 1.0 / (1.0 + np.exp(-logits))

    def similarities(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Cosine similarity of each row to every training request (dense, rows × train)."""
        return (matrix @ self.index.matrix.T).toarray()

    def contributions(
        self, analysis: Analysis, row: sp.csr_matrix
    ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Logit contribution of each evidence unit (a word or phrase), per label.

        Returns the units' spans and an array (units × labels) of their contributions; a
        feature seen several times in the text shares its contribution among its places.
        """
        columns, units, shares, spans = self.features.occurrences(analysis)
        if not len(columns):
            return [], np.zeros((0, len(self.scorers)))
        dense = np.zeros(self.features.n_features)
        dense[row.indices] = row.data
        totals = np.bincount(columns, weights=shares, minlength=self.features.n_features)
        values = dense[columns] * shares / totals[columns]
        per_label = [
            np.bincount(units, weights=values * s.coef[columns] * s.platt_a, minlength=len(spans))
            for s in self.scorers.values()
        ]
        return spans, np.column_stack(per_label)
