"""Turns request texts into suggestions: scores, decisions, outcome, evidence, similar requests."""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from model.estimator import TriageEstimator
from model.links import Comparable
from model.outcome import decide_outcome
from model.suggestion import Evidence, Ignored, LabelScore, SimilarRequest, Suggestion
from model.text import Analysis, analyze, has_control_chars

DEFAULT_BAND = 0.1
# Past requests in the other language shown among the similar ones (0: none).
DEFAULT_ACROSS_LANGUAGES = 2
_PARALLEL_MIN = 512  # below this, starting worker processes costs more than it saves
_WORKER_MODEL: TriageModel | None = None


def _ignore_sigint() -> None:
    """Ctrl-C is the parent's to handle: a worker that raised too could hang the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _suggest_in_worker(chunk: tuple[list[str], bool, list[object] | None]) -> list[object]:
    assert _WORKER_MODEL is not None  # set by the parent before forking
    texts, explain, ids = chunk
    suggestions = _WORKER_MODEL.suggest_many(texts, explain=explain)
    # JSON text crosses the process boundary far faster than pickled dataclasses.
    return suggestions if ids is None else _json_lines(suggestions, ids)


@contextlib.contextmanager
def _collect_new_objects_only() -> Iterator[None]:
    """Keep the garbage collector off the objects that existed before a batch started.

    A large batch allocates enough to trigger full collections, and each would walk every
    object of the process, the model's vocabularies included; freezing them for the batch
    cuts the collector's share of the time about threefold. Nothing is leaked: the objects
    are unfrozen afterwards, and frozen objects are still freed by reference counting. A
    process that froze objects itself (or a batch already running in another thread) is
    left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def usable_cores() -> int:
    """Cores this process may run on (fewer than the machine's in a container or cgroup)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _resolve_jobs(n_jobs: int) -> int:
    return usable_cores() if n_jobs == -1 else max(1, n_jobs)


def _json_lines(suggestions: list[Suggestion], ids: Sequence[object]) -> list[str]:
    return [
        json.dumps(s.to_record(i), ensure_ascii=False)
        for s, i in zip(suggestions, ids, strict=True)
    ]


_SPAN_JOINERS = frozenset(" -/\t")
# Neighbouring words join into one phrase only when each carries real weight on its own.
_PHRASE_MIN = 0.25


def _ignored(analysis: Analysis) -> list[Ignored]:
    """The parts of the text left unread: its frame, and denials of a security concern."""
    frames = analysis.boilerplate
    spans = [Ignored(s, e, "frame") for s, e in frames]
    spans += [
        Ignored(s, e, "denial")
        for s, e in analysis.denials
        if not any(fs <= s and e <= fe for fs, fe in frames)  # a footer's own denial
    ]
    return sorted(spans, key=lambda span: span.start)


class _Phrase(NamedTuple):
    """Neighbouring words read as one piece of evidence, at one place in the text."""

    start: int
    end: int
    weight: float
    words: tuple[str, ...]  # lower-cased: the same phrase at another place has the same words


def _merge_spans(
    text: str, spans: list[tuple[int, int]], weights: list[float], words: list[str]
) -> list[_Phrase]:
    """Join neighbouring words that both argue the same way, and clearly, into phrases.

    ``spans`` are in text order; ``weights`` holds one contribution per span and ``words``
    its word, lower-cased. Whether two words join is decided at each place on its own share.
    """
    merged: list[list] = []
    for (start, end), weight, word in zip(spans, weights, words, strict=True):
        if merged:
            last = merged[-1]
            joins = (
                start < last[1]
                or (  # overlapping spans always join
                    (last[2] > 0) == (weight > 0)
                    and abs(weight) >= _PHRASE_MIN
                    and abs(last[2]) >= _PHRASE_MIN
                    and 0 < start - last[1] <= 2
                    and all(ch in _SPAN_JOINERS for ch in text[last[1] : start])
                )
            )
            if joins:
                last[1] = max(last[1], end)
                last[2] += weight
                last[3].append(word)
                continue
        merged.append([start, end, weight, [word]])
    return [_Phrase(s, e, w, tuple(ws)) for s, e, w, ws in merged]


def _phrase_totals(phrases: list[_Phrase]) -> list[_Phrase]:
    """One entry per distinct phrase (the same words, case aside): at its first place in the
    text, weighing what all its places weigh together; first places in text order.

    A repeated word's contribution is split among its places (``contributions``), so a
    single place understates it: "Password" said twelve times is one strong reason, not
    twelve weak ones.
    """
    first: dict[tuple[str, ...], _Phrase] = {}
    for phrase in phrases:
        seen = first.get(phrase.words)
        first[phrase.words] = (
            phrase if seen is None else seen._replace(weight=seen.weight + phrase.weight)
        )
    return list(first.values())


class _Reasons(NamedTuple):
    """What an explained suggestion needs beyond the scores: contributions, the neighbours."""

    # The evidence units' spans, and their logit contributions (units × labels).
    contributions: tuple[list[tuple[int, int]], np.ndarray]
    nearest: list[int]
    similarity: list[float]
    # The same wish in the other language: (index position, concept cosine), best first.
    across: list[tuple[int, float]]


class TriageModel:
    """A loaded model version: the Python API for the service and for analysts.

    >>> model = load_model()                       # doctest: +SKIP
    >>> model.suggest("Bitte 2FA für das Admin-Portal").outcome  # doctest: +SKIP
    'security_fix'
    """

    def __init__(
        self,
        estimator: TriageEstimator,
        version: str,
        manifest: dict[str, object] | None = None,
        uncertainty_band: float = DEFAULT_BAND,
        n_evidence: int = 6,
        n_similar: int = 5,
        n_across_languages: int = DEFAULT_ACROSS_LANGUAGES,
    ) -> None:
        self.estimator = estimator
        self.version = version
        self.manifest = manifest or {}
        self.uncertainty_band = uncertainty_band
        self.n_evidence = n_evidence
        self.n_similar = n_similar
        self.n_across_languages = n_across_languages

    @property
    def labels(self) -> tuple[str, ...]:
        return self.estimator.labels

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.estimator.thresholds)

    def suggest(self, text: str, explain: bool = True) -> Suggestion:
        """Suggest labels, an outcome and reasons for one feature request."""
        return self.suggest_many([text], explain=explain)[0]

    def suggest_many(
        self, texts: Sequence[str], explain: bool = True, n_jobs: int = 1
    ) -> list[Suggestion]:
        """Suggest for many texts at once (vectorised; far faster than one by one).

        With ``explain=False`` the reasons are left out (evidence spans and similar requests;
        ``max_similarity`` is None); scores, decisions, novelty and the outcome are computed
        either way, so the outcome never depends on ``explain``.
        ``n_jobs > 1`` (or ``-1`` for every core) splits a large batch over worker processes;
        it forks, so use it from batch jobs and notebooks, not from a threaded server.
        """
        n_jobs = _resolve_jobs(n_jobs)
        if n_jobs > 1 and len(texts) >= _PARALLEL_MIN:
            return self._suggest_parallel(list(texts), explain, n_jobs)
        with _collect_new_objects_only():
            return self._suggest_batch(texts, explain)

    def _analyses(self, texts: Sequence[str]) -> list[Analysis]:
        return [analyze(t, self.estimator.max_chars) for t in texts]

    def suggest_and_compare(
        self, texts: Sequence[str], explain: bool = True
    ) -> tuple[list[Suggestion], Comparable]:
        """``suggest_many(texts, explain=explain)`` and ``comparable(texts)``, from one
        reading of each text: the service's intake needs both, and reading (``analyze``) and
        transforming a text is much of what either costs. The results are those of the two."""
        with _collect_new_objects_only():
            analyses = self._analyses(texts)
            matrix = self.estimator.transform(analyses)
            concepts = self._concept_vectors(analyses)
            suggestions = self._suggest_analysed(analyses, matrix, explain, concepts)
        return suggestions, self._comparable(analyses, matrix, concepts)

    def _suggest_batch(self, texts: Sequence[str], explain: bool) -> list[Suggestion]:
        analyses = self._analyses(texts)
        return self._suggest_analysed(analyses, self.estimator.transform(analyses), explain)

    def _suggest_analysed(
        self,
        analyses: list[Analysis],
        matrix: sp.csr_matrix,
        explain: bool,
        concepts: np.ndarray | None = None,
    ) -> list[Suggestion]:
        """Suggestions for texts read (``analyses``) and transformed (``matrix``) already;
        ``concepts``: their concept-space rows if computed already (else as needed)."""
        probabilities = self.estimator.predict_proba(matrix)
        comparison = self.estimator.compare(matrix, self.n_similar if explain else 0)
        topic = comparison.topic.tolist()
        if not explain:
            return [
                self._suggestion(analysis, probabilities[i], topic[i])
                for i, analysis in enumerate(analyses)
            ]
        nearest, similarity = comparison.nearest, comparison.similarity
        contributions = self.estimator.contributions(analyses, matrix)
        across = self._across_languages(analyses, concepts)
        suggestions = []
        for i, analysis in enumerate(analyses):
            reasons = _Reasons(
                contributions=contributions[i],
                nearest=nearest[i].tolist(),
                similarity=similarity[i].tolist(),
                across=across[i],
            )
            suggestions.append(self._suggestion(analysis, probabilities[i], topic[i], reasons))
        return suggestions

    def json_lines(
        self, texts: Sequence[str], ids: Sequence[object], explain: bool = True, n_jobs: int = 1
    ) -> list[str]:
        """One JSON line (``triage predict``'s record) per text: the fast path for batch jobs."""
        n_jobs = _resolve_jobs(n_jobs)
        if n_jobs > 1 and len(texts) >= _PARALLEL_MIN:
            return self._suggest_parallel(list(texts), explain, n_jobs, list(ids))
        return _json_lines(self.suggest_many(texts, explain=explain), ids)

    def _suggest_parallel(
        self, texts: list[str], explain: bool, n_jobs: int, ids: list[object] | None = None
    ) -> list:
        global _WORKER_MODEL
        _WORKER_MODEL = self
        size = max(64, -(-len(texts) // (n_jobs * 4)))
        chunks = [
            (texts[i : i + size], explain, None if ids is None else ids[i : i + size])
            for i in range(0, len(texts), size)
        ]
        try:
            pool = multiprocessing.get_context("fork").Pool(n_jobs, initializer=_ignore_sigint)
            with pool:  # leaving it terminates the workers, also on Ctrl-C
                parts = pool.map(_suggest_in_worker, chunks)
        finally:
            _WORKER_MODEL = None
        return [suggestion for part in parts for suggestion in part]

    def score_matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities only (rows × labels): the fast path for evaluation."""
        return self.estimator.predict_proba(self.estimator.transform(self._analyses(texts)))

    def vectors(self, texts: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised feature vectors; the dot product of two rows is their cosine similarity.

        Vectors of different model versions live in different spaces: never mix them.
        """
        return self.estimator.transform(self._analyses(texts))

    @property
    def concept_link_similarity(self) -> float | None:
        """Cosine in the concept space from which two languages' requests are linked."""
        concepts = self.estimator.concepts
        return None if concepts is None else concepts.link_similarity

    def comparable(self, texts: Sequence[str]) -> Comparable:
        """What near-duplicate search needs of each text, from one reading of it.

        ``lexical`` is ``vectors(texts)``; ``concepts`` the rows of the German–English concept
        space (``model.concepts``; None when the model has none); ``langs`` each text's language.
        """
        analyses = self._analyses(texts)
        return self._comparable(
            analyses, self.estimator.transform(analyses), self._concept_vectors(analyses)
        )

    def _concept_vectors(self, analyses: list[Analysis]) -> np.ndarray | None:
        concepts = self.estimator.concepts
        return None if concepts is None else concepts.vectors(analyses)

    @staticmethod
    def _comparable(
        analyses: list[Analysis], matrix: sp.csr_matrix, concepts: np.ndarray | None
    ) -> Comparable:
        return Comparable(lexical=matrix, concepts=concepts, langs=[a.lang for a in analyses])

    def _flags(self, analysis: Analysis, topic_similarity: float) -> list[str]:
        flags = []
        if not analysis.text.strip():
            flags.append("empty_text")
        elif len(analysis.tokens) < 2:  # "hi", "test", "Tetris": scores of one word mislead
            flags.append("too_short")
        elif analysis.lang not in ("de", "en"):
            flags.append("unsupported_language")
        if analysis.text.strip() and topic_similarity < self.estimator.index.novelty_threshold:
            flags.append("novel")
        if analysis.truncated:
            flags.append("truncated")
        if has_control_chars(analysis.text):
            flags.append("control_characters")
        return flags

    def _suggestion(
        self,
        analysis: Analysis,
        probabilities: np.ndarray,
        topic_similarity: float,
        reasons: _Reasons | None = None,
    ) -> Suggestion:
        estimator = self.estimator
        evidence = self._evidence(analysis, *reasons.contributions) if reasons is not None else {}
        per_label = []
        for label, score in zip(estimator.labels, probabilities.tolist(), strict=True):
            threshold = estimator.thresholds[label]
            per_label.append(
                LabelScore(
                    label=label,
                    score=round(score, 4),
                    threshold=threshold,
                    decision=score >= threshold,
                    uncertain=abs(score - threshold) < self.uncertainty_band,
                    evidence=evidence.get(label, []),
                )
            )
        flags = self._flags(analysis, topic_similarity)
        decision = decide_outcome(per_label, analysis.lang, flags, topic_similarity)
        similar: list[SimilarRequest] = []
        max_similarity = None
        ignored: list[Ignored] = []
        if reasons is not None:
            similar = self._similar(reasons)
            max_similarity = round(reasons.similarity[0], 4) if reasons.similarity else 0.0
            ignored = _ignored(analysis)
        return Suggestion(
            language=analysis.lang,
            labels=[ls.label for ls in per_label if ls.decision],
            scores={ls.label: ls.score for ls in per_label},
            per_label=per_label,
            outcome=decision.outcome,
            rationale=decision.rationale,
            uncertain_labels=[ls.label for ls in per_label if ls.uncertain],
            similar=similar,
            max_similarity=max_similarity,
            topic_similarity=round(topic_similarity, 4),
            flags=flags,
            model_version=self.version,
            thresholds=dict(estimator.thresholds),
            uncertainty_band=self.uncertainty_band,
            ignored=ignored,
        )

    def _across_languages(
        self, analyses: list[Analysis], vectors: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per text, the same wish among past requests in the other language (may be none);
        ``vectors``: the texts' concept-space rows, if computed already."""
        concepts, index = self.estimator.concepts, self.estimator.index
        if concepts is None or index.concepts is None or self.n_across_languages < 1:
            return [[] for _ in analyses]
        # A few more than shown: those already among the nearest by words are left out there.
        return index.across_languages(
            concepts.vectors(analyses) if vectors is None else vectors,
            [a.lang for a in analyses],
            self.n_across_languages + self.n_similar,
            concepts.link_similarity,
        )

    def _similar(self, reasons: _Reasons) -> list[SimilarRequest]:
        """The nearest past requests by words and characters, then those in the other
        language that the concept space links to this one (``cross_language``)."""
        index = self.estimator.index
        pairs = zip(reasons.nearest, reasons.similarity, strict=True)
        by_words = [(i, s) for i, s in pairs if s > 0]
        seen = {i for i, _ in by_words}
        across = [(i, s) for i, s in reasons.across if i not in seen][: self.n_across_languages]
        return [
            SimilarRequest(
                id=index.ids[i],
                text=index.snippets[i],
                labels=list(index.labels[i]),
                lang=index.langs[i],
                similarity=round(sim, 4),
                cross_language=cross,
            )
            for found, cross in ((by_words, False), (across, True))
            for i, sim in found
        ]

    def _evidence(
        self, analysis: Analysis, spans: list[tuple[int, int]], contributions: np.ndarray
    ) -> dict[str, list[Evidence]]:
        """Per label, the ``n_evidence`` strongest distinct phrases (|weight| ≥ 0.01).

        ``spans`` are in text order, one per word of ``analysis.tokens``, with one row of
        ``contributions`` (units × labels) each. A phrase said more than once is one item:
        its offsets are those of its first place (so ``text[start:end]`` is that place's
        spelling, and a reviewer page marks that place only), its weight the sum over all
        its places. Phrases are ranked and filtered by that sum, so over all of a label's
        phrases, shown or not, the weights still add up to Platt's ``a`` times ``w · x``.
        """
        per_label = contributions.T.tolist() if spans else [[]] * len(self.labels)
        words = [token.lower for token in analysis.tokens]
        result: dict[str, list[Evidence]] = {}
        text = analysis.text
        for label, weights in zip(self.estimator.labels, per_label, strict=True):
            phrases = _phrase_totals(_merge_spans(text, spans, weights, words))
            strongest = sorted(phrases, key=lambda p: -abs(p.weight))
            result[label] = [
                Evidence(
                    text=text[p.start : p.end], start=p.start, end=p.end, weight=round(p.weight, 4)
                )
                for p in strongest[: self.n_evidence]
                if abs(p.weight) >= 0.01
            ]
        return result
