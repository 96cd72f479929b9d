"""Fitting the triage estimator: features, per-label scorers, calibration and thresholds.

Calibration and thresholds come from out-of-fold scores of a K-fold cross-validation on the
training data, so neither is tuned on the requests it is judged by.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedKFold

from model.estimator import (
    LABELS,
    FeatureSpace,
    LabelScorer,
    TrainingIndex,
    TriageEstimator,
    best_similarity,
)
from model.text import Analysis, analyze, identity_features
from training.concepts import evaluate_concept_space, fit_concept_space, translation_pairs
from training.config import TrainConfig
from training.data import Sample

Progress = Callable[[str, int, int], None]
SNIPPET_CHARS = 300


def _no_progress(step: str, done: int, total: int) -> None:
    return None


def label_matrix(samples: list[Sample]) -> np.ndarray:
    """Samples × labels, 1 where the label applies."""
    return np.array([[label in s.labels for label in LABELS] for s in samples], dtype=int)


def _fit_vectorizer(docs: list[list[str]], min_df: int) -> TfidfVectorizer:
    for df in (min_df, 1):
        vectorizer = TfidfVectorizer(
            analyzer=identity_features,
            lowercase=False,
            sublinear_tf=True,
            min_df=df,
            dtype=np.float64,
        )
        try:
            return vectorizer.fit(docs)
        except ValueError:  # empty vocabulary: tiny data or a block without any features
            continue
    return vectorizer.fit([["<empty>"]])


def fit_features(analyses: list[Analysis], config: TrainConfig) -> FeatureSpace:
    weights = (config.block_weights[0], config.block_weights[1] if config.use_char_ngrams else 0.0)
    return FeatureSpace(
        word=_fit_vectorizer([a.word_features for a in analyses], config.word_min_df),
        char=_fit_vectorizer([a.char_features for a in analyses], config.char_min_df),
        weights=weights,
    )


def nb_scale(X: sp.spmatrix, y: np.ndarray, weight: float, smoothing: float) -> np.ndarray:
    """Per-feature scale from the label's log-count ratio, as in NBSVM (Wang & Manning, 2012).

    ``r = log((p / |p|) / (q / |q|))``, where ``p`` and ``q`` are the smoothed sums of a
    feature's TF-IDF values over the requests with and without the label. A feature is scaled
    by ``(1 - weight) + weight * |r| / mean |r|``: a word that tells the label's requests from
    the others is penalised less by the regulariser than one found evenly in both. Scaling a
    feature by ``s`` and its fitted weight by the same ``s`` gives back a linear model on the
    unscaled features, so the saved model, its speed and its evidence stay as they were.
    """
    labelled = (y == 1).astype(np.float64)
    with_label = X.T @ labelled  # a product, not row slices: those would copy the matrix
    pos = with_label + smoothing
    neg = np.asarray(X.sum(axis=0)).ravel() - with_label + smoothing
    ratio = np.abs(np.log(pos / pos.sum()) - np.log(neg / neg.sum()))
    mean = ratio.mean()
    if not mean > 0:  # one feature, or none telling: nothing to weigh
        return np.ones_like(ratio)
    return (1.0 - weight) + weight * ratio / mean


def _scaled_columns(X: sp.spmatrix, scale: np.ndarray) -> sp.csr_matrix:
    """``X`` with each column multiplied by ``scale``; only the values are copied."""
    rows = sp.csr_matrix(X)
    return sp.csr_matrix((rows.data * scale[rows.indices], rows.indices, rows.indptr), rows.shape)


def _fit_linear(X: object, y: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, float]:
    if y.min() == y.max():  # a label that never (or always) applies in this fold
        return np.zeros(X.shape[1]), 10.0 if y[0] else -10.0
    scale = nb_scale(X, y, config.nb_weight, config.nb_smoothing) if config.nb_weight else None
    clf = LogisticRegression(
        C=config.C, class_weight="balanced", solver="liblinear", random_state=config.seed
    )
    clf.fit(X if scale is None else _scaled_columns(X, scale), y)
    coef = clf.coef_.ravel().astype(np.float64)
    return coef if scale is None else coef * scale, float(clf.intercept_[0])


_FOLD_STATE: tuple[list[Analysis], np.ndarray, TrainConfig] | None = None


def group_of(sample: Sample) -> str:
    """The group a sample is split with: its original's id for a translation, else its own."""
    return str(sample.extra.get("source_id") or sample.id)


def grouped_folds(
    groups: Sequence[str], n_splits: int, seed: int, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits (repeated) that keep each group on one side of every split.

    A request and its translation carry the same meaning: with one in the training part and
    the other in the test part, the score of the test part would be too good. With every
    group of one sample, the folds are exactly those of a shuffled ``KFold`` over the samples.
    """
    distinct = list(dict.fromkeys(groups))
    code = {group: i for i, group in enumerate(distinct)}
    codes = np.array([code[group] for group in groups], dtype=np.int64)
    splitter = RepeatedKFold(n_splits=n_splits, n_repeats=repeats, random_state=seed)
    return [
        (np.flatnonzero(np.isin(codes, train)), np.flatnonzero(np.isin(codes, test)))
        for train, test in splitter.split(distinct)
    ]


def _fold_scores(fold: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fit on one fold's training part, score its test part (runs in a worker process)."""
    assert _FOLD_STATE is not None
    analyses, Y, config = _FOLD_STATE
    train_idx, test_idx = fold
    features = fit_features([analyses[i] for i in train_idx], config)
    X_train = features.transform([analyses[i] for i in train_idx])
    X_test = features.transform([analyses[i] for i in test_idx])
    scores = np.zeros((len(test_idx), len(LABELS)))
    for j in range(len(LABELS)):
        coef, intercept = _fit_linear(X_train, Y[train_idx, j], config)
        scores[:, j] = X_test @ coef + intercept
    return test_idx, scores


def out_of_fold_scores(
    analyses: list[Analysis],
    Y: np.ndarray,
    config: TrainConfig,
    progress: Progress,
    groups: Sequence[str],
) -> np.ndarray:
    """Raw linear scores of each sample from a model that did not see it (samples × labels).

    Each fold fits its own vocabulary, so the scores are honest about unseen words; a group
    (a request and its translations) is never split. Folds run in parallel worker processes
    (forked: the analysed texts are shared, not copied).
    """
    global _FOLD_STATE
    n_splits = min(config.cv_folds, len(set(groups)))
    folds = grouped_folds(groups, n_splits, config.seed)
    jobs = min(config.n_jobs if config.n_jobs > 0 else os.cpu_count() or 1, n_splits)
    scores = np.zeros(Y.shape, dtype=np.float64)
    progress("cross-validation", 0, n_splits)
    _FOLD_STATE = (analyses, Y, config)
    try:
        if jobs > 1:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                results = pool.imap_unordered(_fold_scores, folds)
                for done, (test_idx, fold_scores) in enumerate(results, start=1):
                    scores[test_idx] = fold_scores
                    progress("cross-validation", done, n_splits)
        else:
            for done, fold in enumerate(folds, start=1):
                test_idx, fold_scores = _fold_scores(fold)
                scores[test_idx] = fold_scores
                progress("cross-validation", done, n_splits)
    finally:
        _FOLD_STATE = None
    return scores


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Sigmoid calibration ``p = 1 / (1 + exp(-(a * s + b)))`` fitted on out-of-fold scores."""
    if y.min() == y.max():
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, solver="lbfgs")
    lr.fit(scores.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def tune_threshold(probabilities: np.ndarray, y: np.ndarray, beta: float) -> float:
    """Threshold maximising F-beta on out-of-fold probabilities (middle of the best plateau)."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    best, best_at = -1.0, []
    for t in grid:
        predicted = probabilities >= t
        tp = float(np.sum(predicted & (y == 1)))
        fp = float(np.sum(predicted & (y == 0)))
        fn = float(np.sum(~predicted & (y == 1)))
        denom = (1 + beta**2) * tp + beta**2 * fn + fp
        score = (1 + beta**2) * tp / denom if denom else 0.0
        if score > best + 1e-9:
            best, best_at = score, [t]
        elif abs(score - best) <= 1e-9:
            best_at.append(t)
    return float(best_at[len(best_at) // 2])


@dataclass(frozen=True)
class FitReport:
    """What cross-validation found: out-of-fold probabilities and the tuned thresholds."""

    oof_probabilities: np.ndarray
    thresholds: dict[str, float]
    platt: dict[str, tuple[float, float]]
    concepts: dict[str, Any] | None = None  # ``training.concepts.evaluate_concept_space``
    # Ids of requests of some length of which the model reads no word (all of it greeting,
    # signature, footer or template): a rule gone wrong shows here, not in any metric.
    unread: list[str] = field(default_factory=list)


UNREAD_MIN_CHARS = 80  # shorter texts may well be all greeting ("Hallo zusammen, danke!")


def fit_estimator(
    samples: list[Sample], config: TrainConfig, progress: Progress = _no_progress
) -> tuple[TriageEstimator, FitReport]:
    """Fit the full estimator on ``samples``; calibration and thresholds from CV."""
    analyses = []
    for i, sample in enumerate(samples):
        if i % 100 == 0:
            progress("analysing texts", i, len(samples))
        analyses.append(analyze(sample.text, config.max_chars))
    progress("analysing texts", len(samples), len(samples))
    Y = label_matrix(samples)
    groups = [group_of(s) for s in samples]
    oof = out_of_fold_scores(analyses, Y, config, progress, groups)

    progress("calibration and thresholds", 0, 1)
    platt, thresholds = {}, {}
    oof_probabilities = np.zeros(Y.shape)
    for j, label in enumerate(LABELS):
        a, b = fit_platt(oof[:, j], Y[:, j])
        platt[label] = (a, b)
        oof_probabilities[:, j] = 1.0 / (1.0 + np.exp(-(a * oof[:, j] + b)))
        if label in config.fixed_thresholds:
            thresholds[label] = float(config.fixed_thresholds[label])
        else:
            beta = config.threshold_beta.get(label, 1.0)
            thresholds[label] = tune_threshold(oof_probabilities[:, j], Y[:, j], beta)
    progress("calibration and thresholds", 1, 1)

    progress("final fit", 0, 1)
    features = fit_features(analyses, config)
    X = features.transform(analyses)
    scorers = {}
    for j, label in enumerate(LABELS):
        coef, intercept = _fit_linear(X, Y[:, j], config)
        scorers[label] = LabelScorer(coef, intercept, *platt[label])
    progress("final fit", 1, 1)

    progress("similarity index", 0, 1)
    # Translations train the scorers but are no past requests of their own: the index (similar
    # requests, novelty) holds the originals only (each its own group, by `group_of`), so a
    # reviewer never sees one request twice.
    indexed = [i for i, (s, group) in enumerate(zip(samples, groups, strict=True)) if group == s.id]
    X_indexed = X if len(indexed) == len(samples) else X[indexed]
    estimator = TriageEstimator(
        features=features,
        scorers=scorers,
        thresholds=thresholds,
        config=config.to_dict(),
        max_chars=config.max_chars,
        index=TrainingIndex(
            matrix=X_indexed,
            ids=[samples[i].id for i in indexed],
            snippets=[samples[i].text[:SNIPPET_CHARS] for i in indexed],
            labels=[samples[i].labels for i in indexed],
            langs=[samples[i].lang for i in indexed],
            novelty_threshold=0.0,
        ),
    )
    topic = estimator.topic_vectors(X_indexed)
    estimator.index.novelty_threshold = novelty_threshold(topic, config.novelty_quantile)
    progress("similarity index", 1, 1)

    progress("concept space", 0, 1)
    pairs = translation_pairs(samples)
    estimator.concepts = fit_concept_space(analyses, pairs, config)
    if estimator.concepts is not None:
        estimator.index.concepts = estimator.concepts.vectors([analyses[i] for i in indexed])
    concepts_report = evaluate_concept_space(analyses, pairs, config)
    progress("concept space", 1, 1)
    unread = [
        s.id
        for s, a in zip(samples, analyses, strict=True)
        if not a.tokens and len(s.text.strip()) >= UNREAD_MIN_CHARS
    ]
    report = FitReport(oof_probabilities, thresholds, platt, concepts_report, unread)
    return estimator, report


def novelty_threshold(X: object, quantile: float) -> float:
    """A low quantile of each training request's similarity to its nearest other request."""
    if X.shape[0] < 2:
        return 0.0
    return float(np.quantile(best_similarity(X, sp.csr_matrix(X.T), exclude_self=True), quantile))
