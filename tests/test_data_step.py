"""``benchmarks/data_step.py``: which requests a round of data is judged with and on."""

from __future__ import annotations

import pytest

from benchmarks import data_step
from training.data import Sample


def _sample(id_: str, lang: str = "de", source_id: str | None = None) -> Sample:
    return Sample(id_, f"Anfrage {id_}", (), lang, {"source_id": source_id} if source_id else {})


def test_the_step_is_the_tail_of_train_from_the_id_on() -> None:
    train = [_sample("a"), _sample("b"), _sample("c")]
    base, step = data_step.split_step(train, "b", [_sample("new")])
    assert [s.id for s in base] == ["a"]
    assert [s.id for s in step] == ["b", "c", "new"]
    with pytest.raises(SystemExit, match="--since z: no such id"):
        data_step.split_step(train, "z", [])


def test_a_translation_of_a_request_under_test_is_left_out_of_that_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = [_sample(f"r{i}") for i in range(10)]
    step = [_sample("new"), _sample("r3-x", "en", source_id="r3")]
    folds = []

    def record(base: list[Sample], step_part: list[Sample], test: list[Sample]) -> object:
        folds.append(({s.id for s in base}, {s.id for s in step_part}, {s.id for s in test}))
        return data_step.Paired(0.5, 0.6, 1.0, 1.0)

    monkeypatch.setattr(data_step, "score_fold", record)
    results = data_step.paired_cv(pool, step, folds=5, repeats=1, seed=13, jobs=1)
    assert len(results) == len(folds) == 5
    for base, step_part, test in folds:
        assert not base & test and not step_part & test  # the step is never scored
        assert "new" in step_part
        assert ("r3-x" in step_part) == ("r3" not in test)
    assert "5 of 5 folds up" in data_step.cv_summary(results)
