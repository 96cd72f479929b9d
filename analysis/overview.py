"""What the labeled data looks like: label co-occurrence and the words typical of a label."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer
from spacy.lang.de.stop_words import STOP_WORDS as GERMAN_STOP_WORDS
from spacy.lang.en.stop_words import STOP_WORDS as ENGLISH_STOP_WORDS

from analysis.frames import label_columns
from model.estimator import LABELS

# Words as the model reads them: letters only, so "2FA" gives "fa" and "CSV-Export" two words.
WORD_PATTERN = r"(?u)[^\W\d_]{2,}"
# Pseudo-count of the prior; larger pulls rare words harder towards "not telling".
PRIOR_WEIGHT = 5000.0
# Function words of both languages (spaCy's lists) tell nothing about a label.
STOP_WORDS = frozenset(GERMAN_STOP_WORDS | ENGLISH_STOP_WORDS)


def cooccurrence(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """Label × label: rows where both labels apply (the diagonal: rows with the label).

    >>> cooccurrence(samples).loc["security", "broad_value"]  # doctest: +SKIP
    """
    columns = label_columns(frame, prefix).astype(int)
    return (columns.T @ columns).rename_axis(index="label", columns="with")


def telling_terms(
    frame: pd.DataFrame,
    label: str,
    lang: str | None = None,
    n: int = 10,
    min_count: int = 3,
    column: str = "text",
) -> pd.DataFrame:
    """The words that most distinguish requests with ``label`` from those without.

    Scored by the log-odds ratio with an informative Dirichlet prior (Monroe et al., 2008,
    "Fightin' Words"): the prior is each word's frequency in all rows, and the ratio is
    divided by its standard error, so frequent, consistently one-sided words rank above
    words that happen to occur twice on one side. Stop words of either language and words in
    fewer than ``min_count`` requests with the label are left out. ``lang`` restricts to one
    language.
    Columns: term, with, without (requests containing it), log_odds, z; highest z first.

    >>> telling_terms(samples, "security", lang="de", n=5)  # doctest: +SKIP
    """
    if n < 0:
        raise ValueError(f"n={n}: how many terms to show, 0 or more")
    if label not in LABELS:
        raise KeyError(f"unknown label {label!r}; known: {', '.join(LABELS)}")
    rows = frame if lang is None else frame[frame["lang"] == lang]
    has = rows[label].astype(bool).to_numpy()
    if has.all() or not has.any():
        return pd.DataFrame(columns=["term", "with", "without", "log_odds", "z"])
    vectorizer = CountVectorizer(token_pattern=WORD_PATTERN, lowercase=True)
    counts = vectorizer.fit_transform(rows[column].fillna("").astype(str)).tocsc()
    terms = vectorizer.get_feature_names_out()
    keep = np.flatnonzero([term not in STOP_WORDS for term in terms])
    counts, terms = counts[:, keep], terms[keep]
    y_with = np.asarray(counts[has].sum(axis=0)).ravel().astype(float)
    y_without = np.asarray(counts[~has].sum(axis=0)).ravel().astype(float)
    present = counts > 0
    docs_with = np.asarray(present[has].sum(axis=0)).ravel()
    docs_without = np.asarray(present[~has].sum(axis=0)).ravel()
    prior = PRIOR_WEIGHT * (y_with + y_without) / (y_with + y_without).sum()
    n_with, n_without = y_with.sum() + PRIOR_WEIGHT, y_without.sum() + PRIOR_WEIGHT
    log_odds = np.log((y_with + prior) / (n_with - y_with - prior)) - np.log(
        (y_without + prior) / (n_without - y_without - prior)
    )
    z = log_odds / np.sqrt(1.0 / (y_with + prior) + 1.0 / (y_without + prior))
    table = pd.DataFrame(
        {
            "term": terms,
            "with": docs_with,
            "without": docs_without,
            "log_odds": log_odds,
            "z": z,
        }
    )
    table = table[table["with"] >= min_count]
    return table.sort_values(["z", "term"], ascending=[False, True]).head(n).reset_index(drop=True)
