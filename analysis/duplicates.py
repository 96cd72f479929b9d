"""Near-duplicates within a frame of requests: the same wish asked twice, in one language or two."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from model import TriageModel
from model.links import links
from service.demand import name_key

DUPLICATE_COLUMNS = ("first", "second", "similarity", "cross_language", "first_lang", "second_lang")
_BLOCK = 1000  # query rows compared at once: a block × all rows of floats at a time


def near_duplicates(
    model: TriageModel,
    frame: pd.DataFrame | pd.Series,
    column: str = "text",
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Every pair of rows of ``frame`` that the service would link as near-duplicates.

    The rule is the demand signal's (``model.links``): words and characters at ``threshold``
    (the service's default 0.5), and a German and an English text also in the model's concept
    space at its own link similarity. One row per pair, ``first`` before ``second`` in the
    frame's order, most similar first; ``similarity`` is the cosine that linked them.

    >>> pairs = near_duplicates(model, samples)                 # doctest: +SKIP
    >>> pairs[pairs.cross_language]                             # doctest: +SKIP
    """
    texts = frame[column] if isinstance(frame, pd.DataFrame) else frame
    texts = texts.fillna("").astype(str)
    found = model.comparable(texts.tolist())
    langs = np.array(found.langs, dtype=object)
    parts: list[pd.DataFrame] = []
    for start in range(0, len(texts), _BLOCK):
        stop = min(start + _BLOCK, len(texts))
        block = links(found.rows(start, stop), found, threshold, model.concept_link_similarity)
        rows, cols = np.nonzero(block.linked)
        rows_abs = rows + start
        later = cols > rows_abs  # each pair once, and never a text with itself
        rows, cols, rows_abs = rows[later], cols[later], rows_abs[later]
        parts.append(
            pd.DataFrame(
                {
                    "first": texts.index.take(rows_abs),
                    "second": texts.index.take(cols),
                    "similarity": block.similarity[rows, cols],
                    "cross_language": block.cross_language[rows, cols],
                    "first_lang": langs[rows_abs],
                    "second_lang": langs[cols],
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=list(DUPLICATE_COLUMNS))
    pairs = pd.concat(parts, ignore_index=True).astype({"first_lang": str, "second_lang": str})
    return pairs.sort_values("similarity", ascending=False, ignore_index=True, kind="stable")


def _distinct(values: pd.Series) -> int:
    return len({name_key(str(v)) for v in values.dropna()} - {None})


def wish_groups(pairs: pd.DataFrame, frame: pd.DataFrame, min_requests: int = 2) -> pd.DataFrame:
    """The requests of ``frame`` that ``pairs`` links, directly or through others, one row each.

    A group is one wish asked several times. Columns: ``requests`` (ids in the frame's order),
    ``n_requests``, ``partners`` and ``customers`` (distinct non-empty names, compared as the
    demand signal compares them, by ``service.demand.name_key``; only when ``frame`` has those
    columns), ``langs`` and ``text`` (the first request's opening). Most partners first, then
    most requests.

    >>> wish_groups(near_duplicates(model, reviews), reviews)   # doctest: +SKIP
    """
    position = {key: i for i, key in enumerate(frame.index)}
    unknown = sorted({*pairs["first"], *pairs["second"]} - position.keys(), key=str)
    if unknown:
        raise ValueError(f"pairs name ids that are not in the frame's index: {unknown[:5]}")
    first = pairs["first"].map(position).to_numpy(dtype=np.int64)
    second = pairs["second"].map(position).to_numpy(dtype=np.int64)
    graph = sp.coo_matrix(
        (np.ones(len(first)), (first, second)), shape=(len(frame), len(frame))
    ).tocsr()
    _, component = connected_components(graph, directed=False)
    # The same columns whether or not any wish was asked twice: code that reads
    # ``groups["partners"]`` must not fail on a store where nothing repeats yet.
    columns = ["requests", "n_requests"]
    columns += [f"{column}s" for column in ("partner", "customer") if column in frame]
    columns += [name for column, name in (("lang", "langs"), ("text", "text")) if column in frame]
    rows = []
    for _, members in pd.Series(np.arange(len(frame))).groupby(component):
        if len(members) < min_requests:
            continue
        group = frame.iloc[members.to_numpy()]
        row: dict[str, object] = {"requests": list(group.index), "n_requests": len(group)}
        for column in ("partner", "customer"):
            if column in group:
                row[f"{column}s"] = _distinct(group[column])
        if "lang" in group:
            row["langs"] = ", ".join(sorted(set(group["lang"])))
        if "text" in group:
            row["text"] = str(group["text"].iloc[0])[:120]
        rows.append(row)
    groups = pd.DataFrame(rows, columns=columns)
    order = [c for c in ("partners", "n_requests") if c in groups]
    return groups.sort_values(order, ascending=False, ignore_index=True, kind="stable")
