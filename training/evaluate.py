"""Quality figures of a model on labeled requests: per label, overall and per language."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from model.estimator import LABELS
from model.predictor import TriageModel
from training.data import LANGS, Sample
from training.pipeline import Progress, _no_progress, label_matrix


def decisions(probabilities: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Apply per-label thresholds to a samples × labels probability matrix."""
    limits = np.array([thresholds[label] for label in LABELS])
    return (probabilities >= limits).astype(int)


def metrics_from(
    y_true: np.ndarray, y_pred: np.ndarray, langs: list[str] | None = None
) -> dict[str, Any]:
    """Per-label precision/recall/F1/support, micro and macro F1, per-language macro F1."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0, labels=list(range(len(LABELS)))
    )
    per_label = {
        label: {
            "precision": round(float(precision[j]), 4),
            "recall": round(float(recall[j]), 4),
            "f1": round(float(f1[j]), 4),
            "support": int(support[j]),
        }
        for j, label in enumerate(LABELS)
    }
    result: dict[str, Any] = {
        "n": len(y_true),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 4),
        "micro_f1": round(float(f1_score(y_true, y_pred, average="micro", zero_division=0)), 4),
        "subset_accuracy": round(float(np.mean(np.all(y_true == y_pred, axis=1))), 4),
        "per_label": per_label,
        "per_language": {},
    }
    if langs is not None:
        for lang in LANGS:
            rows = [i for i, x in enumerate(langs) if x == lang]
            if rows:
                result["per_language"][lang] = {
                    "n": len(rows),
                    "macro_f1": round(
                        float(
                            f1_score(y_true[rows], y_pred[rows], average="macro", zero_division=0)
                        ),
                        4,
                    ),
                }
    return result


SCORE_CHUNK = 256  # requests scored between two progress reports


def evaluate_model(
    model: TriageModel, samples: list[Sample], progress: Progress = _no_progress
) -> dict[str, Any]:
    """Score ``samples`` with ``model`` and compare with their labels; ``progress`` hears
    ("scoring", done, total) as the scores come in, a chunk of requests at a time."""
    texts = [s.text for s in samples]
    progress("scoring", 0, len(texts))
    parts = []
    for start in range(0, len(texts), SCORE_CHUNK):
        parts.append(model.score_matrix(texts[start : start + SCORE_CHUNK]))
        progress("scoring", min(start + SCORE_CHUNK, len(texts)), len(texts))
    probabilities = np.vstack(parts) if parts else model.score_matrix([])
    return metrics_of(model, samples, label_matrix(samples), probabilities)


def metrics_of(
    model: TriageModel, samples: list[Sample], y_true: np.ndarray, probabilities: np.ndarray
) -> dict[str, Any]:
    """Metrics from probabilities already computed (so a caller scores only once)."""
    metrics = metrics_from(
        y_true, decisions(probabilities, model.thresholds), [s.lang for s in samples]
    )
    metrics["model_version"] = model.version
    return metrics


def scored(model: TriageModel, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """True labels and probabilities (both samples × labels), for curves and reports."""
    return label_matrix(samples), model.score_matrix([s.text for s in samples])
