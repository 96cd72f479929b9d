"""The retraining gate: a drop at the tolerance passes, past it fails, NaN never passes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from model.estimator import LABELS
from training.retrain import Gate


def _metrics(macro_f1: float = 0.9, f1: float = 0.9, recall: float = 0.97) -> dict[str, Any]:
    """Gate input; ``f1`` is msp_configurable's F1, ``recall`` security's recall."""
    return {
        "macro_f1": macro_f1,
        "per_label": {
            label: {
                "f1": f1 if label == "msp_configurable" else 0.9,
                "recall": recall if label == "security" else 0.97,
            }
            for label in LABELS
        },
    }


# Champion and challenger values as evaluate.py writes them (4 decimals), chosen so that the
# float difference overshoots the tolerance: 0.93 - 0.92 == 0.010000000000000009.
@pytest.mark.parametrize(
    "champion, challenger",
    [
        (_metrics(macro_f1=0.93), _metrics(macro_f1=0.92)),
        (_metrics(macro_f1=0.7), _metrics(macro_f1=0.69)),
        (_metrics(f1=0.9), _metrics(f1=0.87)),
        (_metrics(f1=0.61), _metrics(f1=0.58)),
    ],
    ids=["macro-0.93-0.92", "macro-0.70-0.69", "label-0.90-0.87", "label-0.61-0.58"],
)
def test_a_drop_equal_to_the_tolerance_passes(champion, challenger) -> None:
    assert Gate().check(champion, challenger) == []


@pytest.mark.parametrize(
    "champion, challenger, reason",
    [
        (_metrics(macro_f1=0.93), _metrics(macro_f1=0.9199), "macro F1 0.9199 is 0.0101 below"),
        (_metrics(f1=0.9), _metrics(f1=0.8699), "msp_configurable F1 drops from 0.9000 to 0.8699"),
        (_metrics(recall=0.97), _metrics(recall=0.9699), "security recall drops"),
    ],
    ids=["macro", "label", "security-recall"],
)
def test_a_drop_beyond_the_tolerance_fails(champion, challenger, reason) -> None:
    reasons = Gate().check(champion, challenger)
    assert len(reasons) == 1 and reasons[0].startswith(reason), reasons


def test_equal_metrics_pass_and_a_gain_passes() -> None:
    assert Gate().check(_metrics(), _metrics()) == []
    assert Gate().check(_metrics(), _metrics(macro_f1=0.95, f1=0.99, recall=1.0)) == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_challenger_metric_holds_it_back(value) -> None:
    challenger = _metrics(macro_f1=value, f1=value, recall=value)
    reasons = Gate().check(_metrics(), challenger)
    for name in ("macro F1", "security recall", "msp_configurable F1"):
        assert any(f"the challenger's {name} is {value}" in r for r in reasons), reasons


def test_a_missing_metric_on_either_side_holds_the_challenger_back() -> None:
    challenger = _metrics()
    del challenger["per_label"]["security"]
    reasons = Gate().check(_metrics(), challenger)
    assert any("the challenger's security recall is missing" in r for r in reasons), reasons
    assert any("the challenger's security F1 is missing" in r for r in reasons), reasons
    champion = _metrics()
    del champion["macro_f1"]
    assert Gate().check(champion, _metrics()) == [
        "the champion's macro F1 is missing, so the two cannot be compared"
    ]


def test_a_metric_that_is_not_a_number_holds_the_challenger_back() -> None:
    assert Gate().check(_metrics(), _metrics(macro_f1=None)) == [  # type: ignore[arg-type]
        "the challenger's macro F1 is not a number (None), so the two cannot be compared"
    ]
