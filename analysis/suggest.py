"""Suggestions and explanations for a column of texts, as DataFrames aligned with its rows."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from model import Suggestion, TriageModel

EXPLANATION_COLUMNS = ("id", "label", "term", "weight", "start", "end")


def _texts(frame: pd.DataFrame | pd.Series, column: str) -> pd.Series:
    texts = frame[column] if isinstance(frame, pd.DataFrame) else frame
    return texts.fillna("").astype(str)


def suggest_frame(
    model: TriageModel, frame: pd.DataFrame | pd.Series, column: str = "text"
) -> pd.DataFrame:
    """Suggest for every text of ``frame[column]``; same index as ``frame``.

    Columns: one boolean per label (the model's decision), ``<label>_score`` (0–1),
    ``<label>_threshold``, ``<label>_uncertain``, ``outcome``, ``language``, ``flags`` (a list)
    and ``topic_similarity``; ``model_version`` is in ``.attrs``. Label columns are named like
    those of ``load_samples``, so ``evaluate(samples, suggest_frame(model, samples))`` works.

    >>> suggestions = suggest_frame(model, samples)              # doctest: +SKIP
    >>> suggestions[["security", "security_score", "outcome"]]   # doctest: +SKIP
    """
    texts = _texts(frame, column)
    suggestions = model.suggest_many(texts.tolist(), explain=False)
    return _suggestion_rows(model, suggestions, texts.index)


def _suggestion_rows(
    model: TriageModel, suggestions: list[Suggestion], index: pd.Index
) -> pd.DataFrame:
    data: dict[str, list[object]] = {label: [] for label in model.labels}
    for suffix in ("score", "threshold", "uncertain"):
        data.update({f"{label}_{suffix}": [] for label in model.labels})
    for suggestion in suggestions:
        for ls in suggestion.per_label:
            data[ls.label].append(ls.decision)
            data[f"{ls.label}_score"].append(ls.score)
            data[f"{ls.label}_threshold"].append(ls.threshold)
            data[f"{ls.label}_uncertain"].append(ls.uncertain)
    data["outcome"] = [s.outcome for s in suggestions]
    data["language"] = [s.language for s in suggestions]
    data["flags"] = [list(s.flags) for s in suggestions]
    data["topic_similarity"] = [s.topic_similarity for s in suggestions]
    # Named, not inferred: an empty batch would leave every column float64.
    types: dict[str, type] = {}
    for label in model.labels:
        types |= {label: bool, f"{label}_score": float, f"{label}_threshold": float}
        types[f"{label}_uncertain"] = bool
    types |= {"outcome": str, "language": str, "flags": object, "topic_similarity": float}
    result = pd.DataFrame(data, index=index).astype(types)
    result.attrs["model_version"] = model.version
    return result


def explanations(
    model: TriageModel,
    frame: pd.DataFrame | pd.Series,
    column: str = "text",
    labels: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The evidence behind each suggestion as a long frame, one row per word or phrase.

    Columns: ``id`` (the row's index value), ``label``, ``term`` (``text[start:end]``),
    ``weight`` (contribution to the label's logit: > 0 argues for the label), ``start``,
    ``end``; strongest evidence first within each row and label. Only the model's top
    evidence per label is listed (``model.n_evidence``). A term said more than once in a
    text is one row: at its first place, weighing all its places together.

    >>> explanations(model, samples.loc[["ev0001"]], labels=["security"])  # doctest: +SKIP
           id     label        term  weight  start  end
    0  ev0001  security    Passwort   1.234     17   25
    """
    texts = _texts(frame, column)
    if isinstance(labels, str):  # one label, not its letters
        labels = [labels]
    wanted = set(labels) if labels is not None else set(model.labels)
    unknown = wanted - set(model.labels)
    if unknown:
        raise KeyError(f"unknown label(s) {sorted(unknown)}; known: {', '.join(model.labels)}")
    rows = []
    suggestions = model.suggest_many(texts.tolist(), explain=True)
    for row_id, suggestion in zip(texts.index, suggestions, strict=True):
        for ls in suggestion.per_label:
            if ls.label not in wanted:
                continue
            for evidence in sorted(ls.evidence, key=lambda e: -abs(e.weight)):
                rows.append(
                    (row_id, ls.label, evidence.text, evidence.weight, evidence.start, evidence.end)
                )
    result = pd.DataFrame(rows, columns=list(EXPLANATION_COLUMNS))
    return result.astype({"label": str, "term": str, "weight": float, "start": int, "end": int})
