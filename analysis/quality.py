"""Quality of suggestions against labels: metrics per label and group, curves, mistakes.

Every function takes ``labels`` (a frame with one boolean column per label, e.g. from
``load_samples``) and ``suggestions`` (from ``suggest_frame``), matched by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

from analysis.frames import label_columns
from model.estimator import LABELS

LENGTH_EDGES: tuple[float, ...] = (0, 150, 300, 600, float("inf"))
MACRO = "macro"


def _aligned(labels: pd.DataFrame, suggestions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = labels.index.difference(suggestions.index)
    if len(missing):
        raise KeyError(f"{len(missing)} labeled row(s) have no suggestion, e.g. {missing[0]!r}")
    return label_columns(labels), suggestions.loc[labels.index]


def _counts(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    tn = int(np.sum(~truth & ~predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _metrics(truth: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    rows = {
        label: _counts(truth[label].to_numpy(bool), predicted[label].to_numpy(bool))
        for label in LABELS
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    macro = table[["precision", "recall", "f1"]].mean()
    table.loc[MACRO] = {**macro.to_dict(), **table[["support", "tp", "fp", "fn", "tn"]].sum()}
    table["n"] = len(truth)
    return table.astype({c: int for c in ("support", "tp", "fp", "fn", "tn", "n")})


def evaluate(
    labels: pd.DataFrame, suggestions: pd.DataFrame, by: str | pd.Series | None = None
) -> pd.DataFrame:
    """Precision, recall, F1, support and tp/fp/fn/tn per label, plus a ``macro`` row.

    ``by`` (a column of ``labels`` or a Series on its index) splits the rows into groups;
    the result is then indexed by (group, label), and has no rows when no row has a group
    (no rows at all, say). Zero-division gives 0, like the training report.

    >>> evaluate(samples, suggestions)["f1"]                     # doctest: +SKIP
    >>> evaluate(samples, suggestions, by="lang").loc["de"]       # doctest: +SKIP
    >>> evaluate(samples, suggestions, by=length_bucket(samples))  # doctest: +SKIP
    """
    truth, suggested = _aligned(labels, suggestions)
    predicted = label_columns(suggested)
    if by is None:
        return _metrics(truth, predicted).rename_axis("label")
    groups = labels[by] if isinstance(by, str) else by.reindex(labels.index)
    parts = {
        key: _metrics(truth.loc[rows], predicted.loc[rows])
        for key, rows in groups.groupby(groups, observed=True).groups.items()
    }
    name = groups.name or "group"
    if not parts:  # no rows, or none in a group: the table's columns, without rows
        empty = _metrics(truth, predicted).iloc[:0]
        dtype = groups.dtype
        if isinstance(dtype, pd.CategoricalDtype):  # groups are named by the categories
            dtype = dtype.categories.dtype
        levels = [pd.Index([], dtype=dtype), empty.index]
        return empty.set_axis(pd.MultiIndex.from_arrays(levels, names=[name, "label"]))
    return pd.concat(parts, names=[name, "label"])


def confusion(labels: pd.DataFrame, suggestions: pd.DataFrame, label: str) -> pd.DataFrame:
    """A 2 × 2 table of one label: rows true no/yes, columns suggested no/yes.

    >>> confusion(samples, suggestions, "security")  # doctest: +SKIP
    suggested  no  yes
    true
    no        160   18
    yes         0  102
    """
    truth, suggested = _aligned(labels, suggestions)
    table = pd.crosstab(
        truth[label].map({False: "no", True: "yes"}),
        suggested[label].astype(bool).map({False: "no", True: "yes"}),
        rownames=["true"],
        colnames=["suggested"],
        dropna=False,
    )
    return table.reindex(index=["no", "yes"], columns=["no", "yes"], fill_value=0)


def pr_curves(labels: pd.DataFrame, suggestions: pd.DataFrame) -> pd.DataFrame:
    """Precision-recall curve points of every label, long: label, threshold, precision, recall.

    ``average_precision`` of each label is repeated on its rows, for the legend.
    """
    truth, suggested = _aligned(labels, suggestions)
    parts = []
    for label in LABELS:
        y, scores = truth[label].to_numpy(int), suggested[f"{label}_score"].to_numpy(float)
        if len(y) == 0 or y.min() == y.max():  # a curve needs both classes
            continue
        precision, recall, thresholds = precision_recall_curve(y, scores)
        parts.append(
            pd.DataFrame(
                {
                    "label": label,
                    "threshold": np.append(thresholds, np.nan),
                    "precision": precision,
                    "recall": recall,
                    "average_precision": average_precision_score(y, scores),
                }
            )
        )
    columns = ["label", "threshold", "precision", "recall", "average_precision"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def threshold_sweep(
    labels: pd.DataFrame,
    suggestions: pd.DataFrame,
    thresholds: Sequence[float] | None = None,
) -> pd.DataFrame:
    """What each label's precision, recall, F1 and flagged share would be at other thresholds.

    Long frame: label, threshold, precision, recall, f1, flagged (share of rows at or above
    the threshold), current (the model's threshold for the label).
    """
    truth, suggested = _aligned(labels, suggestions)
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2) if thresholds is None else thresholds
    rows = []
    for label in LABELS:
        y = truth[label].to_numpy(bool)
        scores = suggested[f"{label}_score"].to_numpy(float)
        current = float(suggested[f"{label}_threshold"].iloc[0]) if len(suggested) else np.nan
        for threshold in grid:
            flagged = scores >= threshold
            counts = _counts(y, flagged)
            rows.append(
                {
                    "label": label,
                    "threshold": float(threshold),
                    "precision": counts["precision"],
                    "recall": counts["recall"],
                    "f1": counts["f1"],
                    "flagged": float(flagged.mean()) if len(flagged) else 0.0,
                    "current": current,
                }
            )
    return pd.DataFrame(rows)


def mistakes(labels: pd.DataFrame, suggestions: pd.DataFrame, n: int | None = 10) -> pd.DataFrame:
    """Wrong label decisions, the most confident first (farthest from the threshold).

    Long frame indexed by nothing: id, label, kind (``false_negative``: a label the model
    missed; ``false_positive``: one it suggested wrongly), score, threshold, distance.
    """
    if n is not None and n < 0:
        raise ValueError(f"n={n}: how many mistakes to show, 0 or more (None: all)")
    truth, suggested = _aligned(labels, suggestions)
    rows = []
    for label in LABELS:
        wrong = truth[label] != suggested[label].astype(bool)
        for row_id in truth.index[wrong.to_numpy()]:
            score = float(suggested.at[row_id, f"{label}_score"])
            threshold = float(suggested.at[row_id, f"{label}_threshold"])
            rows.append(
                {
                    "id": row_id,
                    "label": label,
                    "kind": "false_negative" if truth.at[row_id, label] else "false_positive",
                    "score": score,
                    "threshold": threshold,
                    "distance": abs(score - threshold),
                }
            )
    columns = ["id", "label", "kind", "score", "threshold", "distance"]
    types = {"label": str, "kind": str, "score": float, "threshold": float, "distance": float}
    table = (
        pd.DataFrame(rows, columns=columns)
        .astype(types)
        .sort_values(["distance", "id"], ascending=[False, True], kind="stable", ignore_index=True)
    )
    return table if n is None else table.head(n)


def length_bucket(
    frame: pd.DataFrame | pd.Series, edges: Sequence[float] = LENGTH_EDGES, column: str = "text"
) -> pd.Series:
    """Text length in characters as ordered buckets (``"<150"``, ``"150–299"``, …, ``"600+"``).

    >>> length_bucket(pd.Series(["short", "x" * 400])).tolist()
    ['<150', '300–599']
    """
    texts = frame[column] if isinstance(frame, pd.DataFrame) else frame
    lengths = texts.fillna("").astype(str).str.len()
    names = []
    for lo, hi in pairwise(edges):
        if lo <= 0:
            names.append(f"<{int(hi)}")
        elif hi == float("inf"):
            names.append(f"{int(lo)}+")
        else:
            names.append(f"{int(lo)}–{int(hi) - 1}")
    return pd.cut(lengths, bins=list(edges), right=False, labels=names).rename("length")
