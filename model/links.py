"""Near-duplicates: when two requests ask for the same thing, in one language or in two.

Any two requests are linked when the cosine of their word and character vectors reaches
``threshold``. Those hardly ever match across languages, so a German and an English request
are also linked when their cosine in the model's concept space (``model.concepts``) reaches
its ``link_similarity``; such a link reports that cosine. The demand signal of the service and
the analysts' ``near_duplicates`` both decide by ``links`` here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

SPACE_LANGS = ("de", "en")  # the languages the concept space is fitted on


class Comparable(NamedTuple):
    """Texts as ``TriageModel.comparable`` returns them: one entry or row per text."""

    lexical: sp.csr_matrix
    concepts: np.ndarray | None
    langs: list[str]

    @property
    def n_texts(self) -> int:
        return int(self.lexical.shape[0])

    def rows(self, start: int, stop: int) -> Comparable:
        """Texts ``start`` to ``stop`` (exclusive)."""
        concepts = None if self.concepts is None else self.concepts[start:stop]
        return Comparable(self.lexical[start:stop], concepts, self.langs[start:stop])

    def stacked(self, other: Comparable) -> Comparable:
        """These texts, then ``other``'s: a copy of both."""
        concepts = None
        if self.concepts is not None and other.concepts is not None:
            concepts = np.vstack([self.concepts, other.concepts])
        return Comparable(
            sp.vstack([self.lexical, other.lexical], format="csr"),
            concepts,
            self.langs + other.langs,
        )


class Links(NamedTuple):
    """Query rows × candidate rows."""

    linked: np.ndarray  # bool
    similarity: np.ndarray  # the cosine that linked them (else the words-and-characters one)
    cross_language: np.ndarray  # bool: the two are in different languages


def links(
    queries: Comparable,
    candidates: Comparable,
    threshold: float,
    link_similarity: float | None,
) -> Links:
    """Which candidates each query is a near-duplicate of (see the module's docstring)."""
    # candidates @ queries.T, not the other way round: scipy would transpose (copy) the
    # candidates' whole matrix first, 3.5 times slower for an inbox of 22,000.
    similarity = (candidates.lexical @ queries.lexical.T).toarray().T
    query_langs = np.array(queries.langs, dtype=object)[:, None]
    candidate_langs = np.array(candidates.langs, dtype=object)[None, :]
    cross_language = query_langs != candidate_langs
    linked = similarity >= threshold
    if link_similarity and queries.concepts is not None and candidates.concepts is not None:
        in_space = np.isin(query_langs, SPACE_LANGS) & np.isin(candidate_langs, SPACE_LANGS)
        concept = queries.concepts @ candidates.concepts.T
        by_concept = cross_language & in_space & ~linked & (concept >= link_similarity)
        similarity = np.where(by_concept, concept, similarity)
        linked |= by_concept
    return Links(linked, similarity, cross_language)
