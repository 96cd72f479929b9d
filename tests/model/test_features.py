"""The fast transform must equal scikit-learn's TF-IDF on the same feature lists."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from model.estimator import TriageEstimator
from model.text import analyze
from tests.conftest import SAMPLES
from training.data import load_samples


def test_transform_equals_scikit_learn(small_estimator: TriageEstimator) -> None:
    features = small_estimator.features
    texts = [s.text for s in load_samples(SAMPLES / "eval.jsonl").samples[:60]]
    analyses = [analyze(t) for t in [*texts, "", "Bitte 2FA für das Admin-Portal"]]
    blocks = [
        features.word.transform([a.word_features for a in analyses]) * features.weights[0],
        features.char.transform([a.char_features for a in analyses]) * features.weights[1],
        features.concept.transform([a.concept_features for a in analyses]) * features.weights[2],
    ]
    reference = sp.csr_matrix(sp.hstack(blocks))
    norms = np.sqrt(np.asarray(reference.multiply(reference).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    reference = sp.csr_matrix(sp.diags(1.0 / norms) @ reference)
    assert abs(features.transform(analyses) - reference).max() < 1e-12
