"""Label columns: how every frame of this package spells the labels of a feature request.

A frame holds one boolean column per label, named like the label (``msp_configurable``,
``security``, ``broad_value``); a prefix (``suggested_``) marks another source of labels.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from model.estimator import LABELS

NO_LABEL = "(none)"


def label_columns(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """The boolean label columns of ``frame`` (with ``prefix``), named by the bare label.

    >>> reviews = pd.DataFrame({"suggested_security": [True], "suggested_msp_configurable": [False],
    ...                         "suggested_broad_value": [False]})
    >>> label_columns(reviews, "suggested_").columns.tolist()
    ['msp_configurable', 'security', 'broad_value']
    """
    missing = [prefix + label for label in LABELS if prefix + label not in frame.columns]
    if missing:
        raise KeyError(f"frame has no label column(s) {', '.join(missing)}")
    columns = frame[[prefix + label for label in LABELS]].astype(bool)
    columns.columns = list(LABELS)
    return columns


def columns_from_lists(
    labels: Iterable[Iterable[str]], index: pd.Index | None = None, prefix: str = ""
) -> pd.DataFrame:
    """One boolean column per label from lists of label names.

    >>> columns_from_lists([["security"], []]).sum().tolist()
    [0, 1, 0]
    """
    sets = [set(names) for names in labels]
    return pd.DataFrame(
        {prefix + label: [label in names for names in sets] for label in LABELS},
        index=index if index is not None else pd.RangeIndex(len(sets)),
        dtype=bool,
    )


def label_sets(frame: pd.DataFrame, prefix: str = "") -> pd.Series:
    """Each row's labels joined with ``+`` (``"(none)"`` when no label applies).

    >>> label_sets(columns_from_lists([["security", "broad_value"], []])).tolist()
    ['security+broad_value', '(none)']
    """
    columns = label_columns(frame, prefix)
    names = [
        "+".join(label for label, on in zip(LABELS, row, strict=True) if on) or NO_LABEL
        for row in columns.itertuples(index=False)
    ]
    return pd.Series(names, index=columns.index, dtype=str, name="labels")
