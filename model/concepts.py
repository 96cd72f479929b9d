"""A space German and English requests share: the same wish lands near itself in both languages.

Words and character n-grams hardly ever match across languages ("Wartemusik" / "hold music"),
so by those features the same wish from a German and an English partner looks unrelated.
This space is cross-language latent semantic indexing (Dumais et al., 1997): a truncated SVD
of the translation pairs in the training data, each pair one document of both texts' words,
so a German word and the English word it is translated by load on the same dimensions.

A text's vector is its words' TF-IDF (sublinear counts, L2-normalised) times ``projection``,
L2-normalised again; the dot product of two vectors is their cosine similarity. A text with
no word of the vocabulary gets a zero vector, similar to nothing. ``link_similarity`` is the
cosine from which two requests in different languages count as the same wish; it was set in
training, with what it finds and misses on held-out pairs in the model's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.text import Analysis


def concept_words(analysis: Analysis) -> list[str]:
    """The words a concept vector is made of: every token but bare numbers."""
    return [t.lower for t in analysis.tokens if not t.lower.isdigit()]


@dataclass
class ConceptSpace:
    vocabulary: dict[str, int]
    idf: np.ndarray  # per vocabulary word
    projection: np.ndarray  # words × dimensions, float32
    link_similarity: float

    @property
    def dimensions(self) -> int:
        return int(self.projection.shape[1])

    def vectors(self, analyses: list[Analysis]) -> np.ndarray:
        """One L2-normalised row per text (float32); zero rows for texts of unknown words."""
        out = np.zeros((len(analyses), self.dimensions), dtype=np.float32)
        for i, analysis in enumerate(analyses):
            counts: dict[int, int] = {}
            for word in concept_words(analysis):
                column = self.vocabulary.get(word)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            if not counts:
                continue
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * self.idf[
                columns
            ]
            row = (weights / np.linalg.norm(weights)) @ self.projection[columns]
            norm = float(np.linalg.norm(row))
            if norm > 0:
                out[i] = row / norm
        return out
