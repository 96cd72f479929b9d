"""Comparing requests with every training request: one compiled pass per request.

A suggestion shows the training requests most like the submitted one, and flags it as novel
when no training request shares its words. Both come from the dot products of the request's
TF-IDF row with every training row. SciPy's sparse product builds a sparse result in two
passes and a dense copy of it, then ``argpartition`` picks the best: 0.29–0.39 ms per short
request in batches of 8, the largest single cost of a suggestion. This loop adds each of the
request's entries into one dense row of sums, as SciPy's product does (the same additions in
the same order, so the same floating-point sums), and picks the best as it scans the row:
0.08–0.13 ms. It runs without the GIL, so the service's event loop goes on meanwhile.

numba compiles the loop on a process's first comparison and keeps the machine code beside
this file (or in numba's user cache when that folder is read-only); a process that finds it
there loads it in about 0.3 s instead of compiling for about 1.2 s. With neither folder
writable, every process compiles it, and says so. numba itself is imported only then: it
maps about 100 MB of LLVM, which processes that never compare (training, the command line's
other commands) should not carry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


def _compare(
    q_indptr: np.ndarray,
    q_indices: np.ndarray,
    q_data: np.ndarray,
    q_topical: np.ndarray,
    t_indptr: np.ndarray,
    t_indices: np.ndarray,
    t_data: np.ndarray,
    t_topic_norms: np.ndarray,
    k: int,
    nearest: np.ndarray,
    similarity: np.ndarray,
    topical_best: np.ndarray,
) -> None:
    n_train = t_topic_norms.shape[0]
    sums = np.zeros(n_train)
    topical = np.zeros(n_train)
    for row in range(q_indptr.shape[0] - 1):
        sums[:] = 0.0
        topical[:] = 0.0
        for entry in range(q_indptr[row], q_indptr[row + 1]):
            feature = q_indices[entry]
            value = q_data[entry]
            if q_topical[entry]:
                for p in range(t_indptr[feature], t_indptr[feature + 1]):
                    product = value * t_data[p]
                    sums[t_indices[p]] += product
                    topical[t_indices[p]] += product
            elif k > 0:  # only the topic similarity is asked for: word entries suffice
                for p in range(t_indptr[feature], t_indptr[feature + 1]):
                    sums[t_indices[p]] += value * t_data[p]
        best = 0.0
        for column in range(n_train):
            best = max(best, topical[column] / t_topic_norms[column])
        topical_best[row] = best
        if k == 0:
            continue
        # The k largest sums, best first; of equal sums the earlier training request first.
        similarity[row, :] = -1.0
        for column in range(n_train):
            value = sums[column]
            if value <= similarity[row, k - 1]:
                continue
            slot = k - 1
            while slot > 0 and similarity[row, slot - 1] < value:
                similarity[row, slot] = similarity[row, slot - 1]
                nearest[row, slot] = nearest[row, slot - 1]
                slot -= 1
            similarity[row, slot] = value
            nearest[row, slot] = column


def nearest_rows(
    rows: sp.csr_matrix,
    topical: np.ndarray,
    reference_t: sp.csr_matrix,
    reference_topic_norms: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the ``k`` reference rows of highest dot product, and the best topical match.

    ``topical`` marks the entries of ``rows`` (aligned with ``rows.data``) that take part in
    the topic similarity; ``reference_t`` is the reference matrix transposed (features ×
    requests, CSR) and ``reference_topic_norms`` its rows' norms over those entries (no zeros).
    Returns ``(nearest, similarity, topical_best)``: positions and dot products, shape
    (rows, k), best first, ties to the lower position; and per row the largest topical dot
    product divided by the reference row's topic norm (the caller divides by the row's own).
    With fewer than ``k`` reference rows, or ``k`` 0, the arrays are that narrow.
    """
    n_rows, n_reference = rows.shape[0], reference_t.shape[1]
    k = min(k, n_reference)
    nearest = np.zeros((n_rows, k), dtype=np.int64)
    similarity = np.zeros((n_rows, k))
    topical_best = np.zeros(n_rows)
    if n_rows and n_reference:
        _compiled()(
            rows.indptr,
            rows.indices,
            rows.data,
            np.ascontiguousarray(topical, dtype=np.bool_),
            reference_t.indptr,
            reference_t.indices,
            reference_t.data,
            reference_topic_norms,
            k,
            nearest,
            similarity,
            topical_best,
        )
    return nearest, similarity, topical_best


@cache
def _compiled() -> Callable[..., None]:
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(_compare)
    except RuntimeError as exc:  # no writable cache folder: beside this file, nor numba's own
        logger.warning("compiling the comparison in every process (%s)", exc)
        return numba.njit(nogil=True)(_compare)
