from __future__ import annotations

import pytest

from model.estimator import TriageEstimator
from tests.conftest import SAMPLES
from training.config import load_config
from training.data import load_samples
from training.pipeline import fit_estimator


@pytest.fixture(scope="session")
def small_estimator() -> TriageEstimator:
    """Fitted on 150 training requests: enough for registry mechanics, in a second or two."""
    samples = load_samples(SAMPLES / "train.jsonl").samples[:150]
    estimator, _ = fit_estimator(samples, load_config(cv_folds=3))
    return estimator
