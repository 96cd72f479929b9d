"""The fitted triage estimator: features, one calibrated linear scorer per label, evidence.

Each label's probability is ``sigmoid(a * (w · x + b) + c)``: a linear model on TF-IDF features
followed by Platt scaling fitted on out-of-fold scores. Because the whole chain is linear up to
the final sigmoid, every feature's share of the score is exact, and the evidence shown to a
reviewer is the real reason for the score rather than an approximation.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from threadpoolctl import ThreadpoolController

from model.concepts import ConceptSpace
from model.similarity import nearest_rows
from model.text import Analysis, char_ngrams

LABELS: tuple[str, ...] = ("msp_configurable", "security", "broad_value")
_CHUNK = 512  # rows per block in best_similarity
_TRANSFORM_ROWS = 2048  # rows per slice when building TF-IDF rows
_EVIDENCE_ROWS = 256  # rows per block when computing evidence
_DERIVED = ("_linear", "_index_topic_norms")  # TriageEstimator caches, not pickled


def _row_blocks(rows: sp.csr_matrix, size: int = _CHUNK) -> list[tuple[int, sp.csr_matrix]]:
    """Row chunks of at most ``size`` rows; a small batch is not sliced (slicing copies)."""
    if rows.shape[0] <= size:
        return [(0, rows)]
    return [(lo, rows[lo : lo + size]) for lo in range(0, rows.shape[0], size)]


def best_similarity(
    rows: sp.csr_matrix, reference_t: sp.csr_matrix, exclude_self: bool = False
) -> np.ndarray:
    """Best cosine similarity of each row to any reference row, in bounded memory.

    ``reference_t`` is the reference matrix transposed (features × requests), so callers can
    transpose once instead of on every call. With ``exclude_self`` (rows and reference are the
    same matrix) a row's match with itself does not count.
    """
    best = np.zeros(rows.shape[0])
    for lo, chunk in _row_blocks(rows):
        block = (chunk @ reference_t).toarray()
        if exclude_self:
            n = block.shape[0]
            block[np.arange(n), lo + np.arange(n)] = -1.0
        best[lo : lo + block.shape[0]] = block.max(axis=1) if block.shape[1] else 0.0
    return best


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread for a product of a few rows: a second thread only waits on the
    first, and when the cores are busy it waits long (a single ``suggest()`` beside two busy
    processes: 112–184 suggestions/s with numpy's two threads, 401–476/s with one)."""
    return _blas().limit(limits=1, user_api="blas")


class Comparison(NamedTuple):
    """How each row compares with the training requests."""

    topic: np.ndarray  # (rows,) best word similarity to any training request
    nearest: np.ndarray  # (rows, k) the k most similar training requests, best first
    similarity: np.ndarray  # (rows, k) their cosine similarities


@dataclass
class LabelScorer:
    """Linear weights of one label plus its Platt calibration."""

    coef: np.ndarray  # (n_features,)
    intercept: float
    platt_a: float
    platt_b: float


@dataclass
class TrainingIndex:
    """The training requests, kept to show similar past requests and to spot novel ones."""

    matrix: sp.csr_matrix  # rows L2-normalised, same feature space as the scorers
    ids: list[str]
    snippets: list[str]
    labels: list[tuple[str, ...]]
    langs: list[str]
    # Below this best similarity in words (character n-grams left out: they match common
    # endings of any text) a request is unlike anything seen in training.
    novelty_threshold: float
    # Each request's row in the German–English concept space (float32), to find the same wish
    # in the other language; None when the model has no space (or was saved before this).
    concepts: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        # Derived copies are rebuilt on first use; pickling them would double the file.
        return {k: v for k, v in self.__dict__.items() if k not in ("matrix_t", "_by_language")}

    @cached_property
    def matrix_t(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.matrix.T)

    @cached_property
    def _by_language(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per language: its rows' positions and their concept vectors, transposed."""
        if self.concepts is None:
            return {}
        langs = np.asarray(self.langs)
        return {
            lang: (rows, np.ascontiguousarray(self.concepts[rows].T))
            for lang in ("de", "en")
            if len(rows := np.flatnonzero(langs == lang))
        }

    def across_languages(
        self, vectors: np.ndarray, langs: list[str], k: int, threshold: float
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` requests in the other language of German and English whose
        concept cosine with it reaches ``threshold`` (positions in the index, best first).

        Words and character n-grams hardly ever match across languages, so the nearest
        requests by them are in the query's own language; these are the same wish asked in the
        other one. A query in neither language, or a zero vector, gets none.
        """
        found: list[list[tuple[int, float]]] = [[] for _ in langs]
        if k < 1:
            return found
        for lang, other in (("de", "en"), ("en", "de")):
            queries = [i for i, x in enumerate(langs) if x == lang]
            if not queries or other not in self._by_language:
                continue
            rows, reference_t = self._by_language[other]
            with _one_blas_thread():
                sims = vectors[queries] @ reference_t
            # Few requests reach the threshold: select those first, then sort only them.
            for query, row in zip(queries, sims, strict=True):
                hits = np.flatnonzero(row >= threshold)
                if len(hits) > k:
                    hits = hits[np.argpartition(-row[hits], k - 1)[:k]]
                hits = hits[np.argsort(-row[hits], kind="stable")]
                found[query] = [(int(rows[c]), float(row[c])) for c in hits]
        return found


@dataclass
class FeatureSpace:
    """Two TF-IDF blocks (words and word pairs, character n-grams), weighted and stacked.

    The vectorizers are fitted by scikit-learn (vocabulary and IDF); transforming is done
    here with the same formula (sublinear TF × IDF, L2 per block), because caching each
    word's columns makes it several times faster than re-deriving character n-grams.
    """

    word: TfidfVectorizer
    char: TfidfVectorizer
    weights: tuple[float, float]
    offsets: tuple[int, int] = field(init=False)
    _idf: np.ndarray = field(init=False, repr=False)
    _block: np.ndarray = field(init=False, repr=False)
    _word_cache: dict[str, tuple[int, np.ndarray]] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        n_word = len(self.word.vocabulary_)
        n_char = len(self.char.vocabulary_)
        self.offsets = (0, n_word)
        self._idf = np.concatenate([self.word.idf_, self.char.idf_])
        self._block = np.repeat([0, 1], [n_word, n_char])

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_word_cache"] = {}
        return state

    @property
    def n_features(self) -> int:
        return self.offsets[1] + len(self.char.vocabulary_)

    def _word_columns(self, word: str) -> tuple[int, np.ndarray]:
        """Unigram column (-1 if unknown) and character n-gram columns of one word."""
        cached = self._word_cache.get(word)
        if cached is None:
            unigram = self.word.vocabulary_.get(word, -1)
            char_vocab, o_char = self.char.vocabulary_, self.offsets[1]
            grams = [o_char + c for g in char_ngrams(word) if (c := char_vocab.get(g)) is not None]
            cached = (unigram, np.asarray(grams, dtype=np.int64))
            if len(self._word_cache) < 500_000:
                self._word_cache[word] = cached
        return cached

    def _doc_columns(self, analysis: Analysis) -> np.ndarray:
        """Columns of every feature occurrence in one text (repeats count as TF)."""
        word_vocab = self.word.vocabulary_
        singles: list[int] = []
        parts: list[np.ndarray] = []
        previous = None
        for token in analysis.tokens:
            unigram, grams = self._word_columns(token.lower)
            if unigram >= 0:
                singles.append(unigram)
            parts.append(grams)
            if previous is not None:
                bigram = word_vocab.get(f"{previous} {token.lower}")
                if bigram is not None:
                    singles.append(bigram)
            previous = token.lower
        parts.append(np.asarray(singles, dtype=np.int64))
        return np.concatenate(parts)

    def transform(self, analyses: list[Analysis]) -> sp.csr_matrix:
        """TF-IDF rows: sublinear TF × IDF, L2 per block, block weights, then L2 overall.

        Computed for many rows at once (the norms are per (row, block) sums, so no step loops
        over rows in Python), in slices of rows so memory stays bounded for a large corpus.
        """
        parts = [
            self._tfidf_rows(analyses[lo : lo + _TRANSFORM_ROWS])
            for lo in range(0, len(analyses), _TRANSFORM_ROWS)
        ]
        indptr = np.zeros(len(analyses) + 1, dtype=np.int64)
        np.cumsum(np.concatenate([p[0] for p in parts] or [[]]), out=indptr[1:])
        matrix = sp.csr_matrix(
            (
                np.concatenate([p[2] for p in parts] or [np.zeros(0)]),
                np.concatenate([p[1] for p in parts] or [np.zeros(0, dtype=np.int64)]),
                indptr,
            ),
            shape=(len(analyses), self.n_features),
        )
        matrix.has_sorted_indices = True
        return matrix

    def _tfidf_rows(self, analyses: list[Analysis]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries per row, and the rows' columns (ascending within a row) and values."""
        n_rows, n_features = len(analyses), self.n_features
        columns = [self._doc_columns(analysis) for analysis in analyses]
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), [len(c) for c in columns])
        # One sort gives each row's distinct columns in order and their term counts; building
        # the CSR arrays directly spares scipy's conversions, which dominate for a single text.
        keys, counts = np.unique(rows * n_features + np.concatenate(columns), return_counts=True)
        row_of, columns_of = np.divmod(keys, n_features)
        block = self._block[columns_of]
        tfidf = (1.0 + np.log(counts)) * self._idf[columns_of]
        cell = row_of * 2 + block
        norms = np.sqrt(np.bincount(cell, weights=tfidf * tfidf, minlength=2 * n_rows))
        norms[norms == 0] = 1.0
        tfidf = tfidf / norms[cell] * np.asarray(self.weights, dtype=np.float64)[block]
        totals = np.sqrt(np.bincount(row_of, weights=tfidf * tfidf, minlength=n_rows))
        totals[totals == 0] = 1.0
        tfidf = tfidf / totals[row_of]
        keep = tfidf != 0  # a block weighted 0 leaves no stored zeros behind
        entries = np.bincount(row_of[keep], minlength=n_rows)
        return entries, columns_of[keep], tfidf[keep]

    def occurrences(
        self, analysis: Analysis
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """Every feature occurrence in one text and the word it stands on.

        Returns, per entry, the feature column, the evidence unit (the word's position) and
        the share of the occurrence that word gets (a word pair gives half to each); and the
        ``(start, end)`` span of each word.
        """
        tokens = analysis.tokens
        spans = [(t.start, t.end) for t in tokens]
        per_word = [self._word_columns(t.lower) for t in tokens]
        # Character n-grams are most entries: each belongs wholly to its word.
        grams = [g for _, g in per_word]
        gram_columns = np.concatenate(grams) if grams else np.zeros(0, dtype=np.int64)
        gram_units = np.repeat(np.arange(len(tokens)), [len(g) for g in grams])

        # The word block comes first, so a word's vocabulary index is its column.
        columns: list[int] = []
        units: list[int] = []
        shares: list[float] = []
        word_vocab = self.word.vocabulary_
        for k, (unigram, _) in enumerate(per_word):
            if unigram >= 0:
                columns.append(unigram)
                units.append(k)
                shares.append(1.0)
            if k + 1 < len(tokens):
                pair = word_vocab.get(f"{tokens[k].lower} {tokens[k + 1].lower}")
                if pair is not None:
                    columns += (pair, pair)
                    units += (k, k + 1)
                    shares += (0.5, 0.5)
        return (
            np.concatenate([gram_columns, np.asarray(columns, dtype=np.int64)]),
            np.concatenate([gram_units, np.asarray(units, dtype=np.int64)]),
            np.concatenate([np.ones(len(gram_columns)), np.asarray(shares, dtype=np.float64)]),
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
    # German–English space for cross-language near-duplicates; None in models saved before it
    # existed (the class default then stands in) or trained without translation pairs.
    concepts: ConceptSpace | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.scorers)

    def transform(self, analyses: list[Analysis]) -> sp.csr_matrix:
        return self.features.transform(analyses)

    def __getstate__(self) -> dict[str, object]:
        # Derived arrays are rebuilt on first use.
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    @cached_property
    def _linear(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every label's weights as one (features × labels) array, then intercepts and Platt."""
        scorers = list(self.scorers.values())
        return (
            np.column_stack([s.coef for s in scorers]),
            np.array([s.intercept for s in scorers]),
            np.array([s.platt_a for s in scorers]),
            np.array([s.platt_b for s in scorers]),
        )

    def predict_proba(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Calibrated probability per row and label, columns in ``self.labels`` order."""
        coef, intercept, platt_a, platt_b = self._linear
        logits = platt_a * (np.asarray(matrix @ coef) + intercept) + platt_b
        return 1.0 / (1.0 + np.exp(-logits))

    def _topic_norms(self, matrix: sp.csr_matrix) -> np.ndarray:
        """L2 norm of each row's word block (character n-grams left out)."""
        topical = np.where(self.features._block[matrix.indices] != 1, matrix.data, 0.0)
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        return np.sqrt(np.bincount(rows, weights=topical**2, minlength=matrix.shape[0]))

    @cached_property
    def _index_topic_norms(self) -> np.ndarray:
        norms = self._topic_norms(self.index.matrix)
        norms[norms == 0] = 1.0  # such a request has no word entry to divide
        return norms

    def topic_vectors(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Rows restricted to the word block, L2-normalised again."""
        keep = self.features._block[matrix.indices] != 1
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
        norms = self._topic_norms(matrix)
        norms[norms == 0] = 1.0
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=matrix.shape[0]))])
        data = matrix.data[keep] / norms[rows]
        return sp.csr_matrix((data, matrix.indices[keep], indptr), shape=matrix.shape)

    def compare(self, matrix: sp.csr_matrix, k: int) -> Comparison:
        """Topic similarity and the ``k`` nearest training requests of each row.

        One pass over the rows' products with the training matrix serves both: the full rows
        give cosine similarities; the rows' word entries alone, divided by both sides' norms
        of that part, give what comparing ``topic_vectors`` would (character n-grams only
        ever meet character n-grams, so leaving them out of one side leaves them out).
        """
        nearest, similarity, best = nearest_rows(
            matrix,
            self.features._block[matrix.indices] != 1,
            self.index.matrix_t,
            self._index_topic_norms,
            k,
        )
        norms = self._topic_norms(matrix)
        topic = np.zeros(matrix.shape[0])
        np.divide(best, norms, out=topic, where=norms > 0)
        return Comparison(topic=topic, nearest=nearest, similarity=similarity)

    def contributions(
        self, analyses: list[Analysis], matrix: sp.csr_matrix
    ) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """Logit contribution of each evidence unit (a word or phrase), per label, per text.

        ``matrix`` holds the texts' feature rows, as ``transform`` returns them. Returns, per
        text, the units' spans and an array (units × labels) of their contributions; a feature
        seen several times in a text shares its contribution among its places (the evidence
        adds a repeated phrase's places back up). Summed over a text's units, a label's
        contributions are Platt's ``a`` times ``w · x``.

        Each block of rows is one set of array operations: per text they would cost more in
        numpy's call overhead than in arithmetic; blocks keep memory bounded for a large batch.
        """
        return [
            result
            for lo, rows in _row_blocks(matrix, _EVIDENCE_ROWS)
            for result in self._contributions(analyses[lo : lo + rows.shape[0]], rows)
        ]

    def _contributions(
        self, analyses: list[Analysis], matrix: sp.csr_matrix
    ) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        n_labels = len(self.scorers)
        found = [self.features.occurrences(analysis) for analysis in analyses]
        n_units = np.array([len(spans) for *_, spans in found], dtype=np.int64)
        unit_offsets = np.concatenate([[0], np.cumsum(n_units)])
        n_entries = [len(columns) for columns, *_ in found]
        if not sum(n_entries):
            return [(spans, np.zeros((len(spans), n_labels))) for *_, spans in found]
        columns = np.concatenate([c for c, *_ in found])
        units = np.concatenate([u for _, u, *_ in found]) + np.repeat(unit_offsets[:-1], n_entries)
        shares = np.concatenate([sh for _, _, sh, _ in found])
        # Work on each text's own distinct columns: arrays as wide as the whole feature space
        # would cost more than everything else here. A (row, column) key orders like CSR.
        n_features = matrix.shape[1]
        rows = np.repeat(np.arange(len(analyses), dtype=np.int64), n_entries)
        distinct, inverse = np.unique(rows * n_features + columns, return_inverse=True)
        stored = (
            np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
            * n_features
            + matrix.indices
        )
        at = np.searchsorted(stored, distinct)
        hit = at < len(stored)
        hit[hit] = stored[at[hit]] == distinct[hit]
        value = np.zeros(len(distinct))
        value[hit] = matrix.data[at[hit]]
        totals = np.bincount(inverse, weights=shares)
        values = value[inverse] * shares / totals[inverse]
        coef, _, platt_a, _ = self._linear
        # One sum per (unit, label) cell: entries × labels contributions, binned together.
        cells = (units[:, None] * n_labels + np.arange(n_labels)).ravel()
        weights = (values[:, None] * coef[columns] * platt_a).ravel()
        total_units = int(unit_offsets[-1])
        per_cell = np.bincount(cells, weights=weights, minlength=total_units * n_labels)
        per_unit = per_cell.reshape(total_units, n_labels)
        return [
            (spans, per_unit[unit_offsets[i] : unit_offsets[i + 1]])
            for i, (*_, spans) in enumerate(found)
        ]
