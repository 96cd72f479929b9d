"""How reviewers answer the suggestions: agreement over time, corrections, the incoming mix.

Every function takes the frame of ``load_reviews``. Time is the request's ``received_at``
(when it came in), bucketed by ``freq``, a pandas period: ``"W"`` weeks (from Monday),
``"M"`` months, ``"D"`` days.
"""

from __future__ import annotations

import pandas as pd

from analysis.frames import label_columns
from model.estimator import LABELS


def period(reviews: pd.DataFrame, freq: str = "W", column: str = "received_at") -> pd.Series:
    """The start of each row's period (naive UTC timestamps, e.g. the Monday of its week)."""
    times = pd.to_datetime(reviews[column], utc=True).dt.tz_convert(None)
    return times.dt.to_period(freq).dt.start_time.rename("period")


def agreement_over_time(
    reviews: pd.DataFrame, freq: str = "W", column: str = "received_at"
) -> pd.DataFrame:
    """Per period and blind/seen: reviews, share agreeing on all labels, and per label.

    Blind reviews (decided without seeing the suggestion) estimate agreement without the
    anchoring that showing a suggestion brings; compare the two lines.
    Index: (period, blind); columns: reviews, agreed, then one agreement share per label.

    >>> agreement_over_time(reviews)["agreed"].unstack("blind")  # doctest: +SKIP
    """
    reviewed = label_columns(reviews)
    suggested = label_columns(reviews, "suggested_")
    per_label = (reviewed == suggested).astype(float)
    table = pd.DataFrame(
        {
            "period": period(reviews, freq, column),
            "blind": reviews["blind"].astype(bool),
            "reviews": 1,
            "agreed": reviews["labels_agreed"].astype(float),
            **{label: per_label[label] for label in LABELS},
        }
    )
    grouped = table.groupby(["period", "blind"])
    result = grouped[["agreed", *LABELS]].mean()
    result.insert(0, "reviews", grouped["reviews"].sum())
    return result


def corrections(reviews: pd.DataFrame) -> pd.DataFrame:
    """Per label: how often reviewers added it (missed by the model) or removed it.

    Columns: suggested, reviewed (how many requests carry the label on each side), added,
    removed, kept, and ``corrected`` (added + removed as a share of all reviews);
    most corrected label first.
    """
    reviewed = label_columns(reviews)
    suggested = label_columns(reviews, "suggested_")
    table = pd.DataFrame(
        {
            "suggested": suggested.sum(),
            "reviewed": reviewed.sum(),
            "added": (reviewed & ~suggested).sum(),
            "removed": (~reviewed & suggested).sum(),
            "kept": (reviewed & suggested).sum(),
        }
    ).astype(int)
    table["corrected"] = (table["added"] + table["removed"]) / max(len(reviews), 1)
    return table.rename_axis("label").sort_values("corrected", ascending=False, kind="stable")


def mix_over_time(
    reviews: pd.DataFrame, by: str = "lang", freq: str = "W", column: str = "received_at"
) -> pd.DataFrame:
    """Requests per period and value of ``by`` (e.g. ``lang``, ``source``): period × value.

    >>> mix_over_time(reviews, "lang").plot.bar(stacked=True)  # doctest: +SKIP
    """
    periods = period(reviews, freq, column)
    values = reviews[by].fillna("(unknown)")
    return pd.crosstab(periods, values).rename_axis(columns=by)


def label_share_over_time(
    reviews: pd.DataFrame, freq: str = "W", column: str = "received_at", prefix: str = ""
) -> pd.DataFrame:
    """Share of requests per period carrying each label (reviewed labels; or ``suggested_``)."""
    columns = label_columns(reviews, prefix).astype(float)
    columns["(none)"] = (columns.sum(axis=1) == 0).astype(float)
    return columns.groupby(period(reviews, freq, column)).mean()
