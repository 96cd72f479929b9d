"""Translations: cross-validation keeps them with their original; the index leaves them out."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, RepeatedKFold

from tests.conftest import SAMPLES
from training.config import load_config
from training.data import Sample, load_samples
from training.pipeline import fit_estimator, group_of, grouped_folds


def test_folds_of_single_samples_are_those_of_a_shuffled_kfold() -> None:
    ids = [f"r{i}" for i in range(53)]
    for ours, plain in [
        (grouped_folds(ids, 5, 13), KFold(5, shuffle=True, random_state=13).split(ids)),
        (
            grouped_folds(ids, 4, 7, 3),
            RepeatedKFold(n_splits=4, n_repeats=3, random_state=7).split(ids),
        ),
    ]:
        plain = list(plain)
        assert len(ours) == len(plain)
        for (train, test), (plain_train, plain_test) in zip(ours, plain, strict=True):
            assert np.array_equal(train, plain_train) and np.array_equal(test, plain_test)


def test_a_group_is_never_split_and_every_sample_is_tested_once_per_repeat() -> None:
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "e", "f", "g", "h"]
    folds = grouped_folds(groups, 3, 1, repeats=2)
    assert len(folds) == 6
    for repeat in (folds[:3], folds[3:]):
        tested = np.sort(np.concatenate([test for _, test in repeat]))
        assert np.array_equal(tested, np.arange(len(groups)))
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
        assert len(train) + len(test) == len(groups)


def test_a_translation_is_grouped_with_its_original() -> None:
    original = Sample("tr0001", "Bitte 2FA", ("security",), "de")
    translation = Sample("tr0002", "2FA please", ("security",), "en", {"source_id": "tr0001"})
    assert group_of(original) == group_of(translation) == "tr0001"


def test_translations_train_the_scorers_but_are_not_similar_requests() -> None:
    """The similarity index holds originals only: a reviewer never sees one request twice."""
    samples = load_samples(SAMPLES / "eval.jsonl").samples[:80]
    translations = [
        Sample(f"tx{i}", f"{s.text} (translated)", s.labels, "en", {"source_id": s.id})
        for i, s in enumerate(samples[:10])
    ]
    estimator, _ = fit_estimator([*samples, *translations], load_config(n_jobs=1))
    assert estimator.index.ids == [s.id for s in samples]
    assert estimator.index.matrix.shape[0] == len(samples)
    plain, _ = fit_estimator(samples, load_config(n_jobs=1))
    assert not np.array_equal(  # the translations did reach the scorers
        estimator.scorers["security"].coef, plain.scorers["security"].coef
    )
