from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from model.similarity import nearest_rows


def _plain(
    rows: sp.csr_matrix, topical: np.ndarray, reference: sp.csr_matrix, norms: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same results from whole products: sort every row, ties to the lower position."""
    products = (rows @ reference.T).toarray()
    order = np.argsort(-products, axis=1, kind="stable")[:, :k]
    word_rows = rows.copy()
    word_rows.data = np.where(topical, rows.data, 0.0)
    words = (word_rows @ reference.T).toarray() / norms
    best = words.max(axis=1) if words.shape[1] else np.zeros(rows.shape[0])
    return order, np.take_along_axis(products, order, axis=1), np.maximum(best, 0.0)


@pytest.mark.parametrize("k", [0, 1, 3, 9])
def test_nearest_rows_match_whole_products_with_ties_and_empty_rows(k: int) -> None:
    rng = np.random.default_rng(11)
    reference = sp.random(6, 40, density=0.3, random_state=rng, format="csr")
    reference = sp.vstack([reference, reference[2], reference[2]]).tocsr()  # exact ties
    rows = sp.vstack(
        [sp.random(4, 40, density=0.4, random_state=rng), sp.csr_matrix((1, 40)), reference[2]]
    ).tocsr()
    rows.sort_indices()
    topical = rng.random(rows.nnz) < 0.5
    norms = rng.random(reference.shape[0]) + 0.5

    nearest, similarity, best = nearest_rows(rows, topical, sp.csr_matrix(reference.T), norms, k)

    order, products, plain_best = _plain(rows, topical, reference, norms, min(k, 8))
    assert nearest.shape == similarity.shape == (6, min(k, 8))
    assert np.array_equal(nearest, order)
    assert np.allclose(similarity, products, rtol=0, atol=1e-12)
    assert np.allclose(best, plain_best, rtol=0, atol=1e-12)
    if k >= 3:
        assert list(nearest[5, :3]) == [2, 6, 7]  # equal sums: the earlier request first


def test_nearest_rows_of_an_empty_reference() -> None:
    rows = sp.random(3, 10, density=0.5, random_state=1, format="csr")
    nearest, similarity, best = nearest_rows(
        rows, np.ones(rows.nnz, dtype=bool), sp.csr_matrix((10, 0)), np.ones(0), 5
    )
    assert nearest.shape == similarity.shape == (3, 0)
    assert not best.any()


def test_without_a_writable_cache_the_loop_is_compiled_all_the_same(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A service installed read-only for its user must still compare, not fail."""
    import numba

    import model.similarity

    real_njit = numba.njit

    def njit_without_cache(**options: object):  # what numba does with no cache locator
        if options.get("cache"):
            raise RuntimeError("cannot cache function '_compare': no locator available")
        return real_njit(**options)

    monkeypatch.setattr(numba, "njit", njit_without_cache)
    model.similarity._compiled.cache_clear()
    try:
        rows = sp.random(2, 10, density=0.5, random_state=3, format="csr")
        reference = sp.random(4, 10, density=0.5, random_state=4, format="csr")
        nearest, _, _ = nearest_rows(
            rows, np.ones(rows.nnz, dtype=bool), sp.csr_matrix(reference.T), np.ones(4), 2
        )
    finally:
        model.similarity._compiled.cache_clear()  # the next test gets the cached loop again
    products = (rows @ reference.T).toarray()
    assert np.array_equal(nearest, np.argsort(-products, axis=1, kind="stable")[:, :2])
    assert "compiling the comparison in every process" in caplog.text
