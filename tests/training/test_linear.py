"""The per-label linear scorer and its NBSVM-style prior."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from training.config import load_config
from training.pipeline import _fit_linear, nb_scale


def _toy() -> tuple[sp.csr_matrix, np.ndarray]:
    """Feature 0 marks the label, feature 1 is everywhere, feature 2 is noise."""
    rng = np.random.default_rng(3)
    y = np.array([1, 0] * 40)
    X = np.column_stack([y * rng.uniform(0.5, 1.0, 80), np.full(80, 0.5), rng.uniform(0, 1, 80)])
    return sp.csr_matrix(X), y


def test_a_telling_feature_is_scaled_up_and_an_even_one_down() -> None:
    X, y = _toy()
    scale = nb_scale(X, y, weight=1.0, smoothing=0.03)
    assert scale[0] > 1.0 > scale[1]
    assert np.allclose(nb_scale(X, y, weight=0.0, smoothing=0.03), 1.0)


def test_a_single_feature_is_left_as_it_is() -> None:
    """Tiny data can leave one feature (the vectorizer's placeholder): its ratio is 0."""
    X, y = _toy()
    assert np.array_equal(nb_scale(X[:, [1]], y, weight=0.5, smoothing=0.03), [1.0])


def test_the_prior_is_folded_back_into_weights_on_the_unscaled_features() -> None:
    """Scores of the saved weights on raw features equal the fit on the scaled features."""
    X, y = _toy()
    config = load_config(nb_weight=0.5, nb_smoothing=0.03, C=2.0)
    coef, intercept = _fit_linear(X, y, config)
    scale = nb_scale(X, y, 0.5, 0.03)
    clf = LogisticRegression(
        C=2.0, class_weight="balanced", solver="liblinear", random_state=config.seed
    ).fit(X @ sp.diags(scale), y)
    assert np.allclose(X @ coef + intercept, clf.decision_function(X @ sp.diags(scale)))
    plain, _ = _fit_linear(X, y, load_config(nb_weight=0.0, C=2.0))
    assert not np.allclose(plain, coef)  # the prior changed the fit
