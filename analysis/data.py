"""Labeled feature requests (``data/samples``-style JSON Lines) as one DataFrame."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from model.estimator import LABELS
from training.data import load_many

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATHS: tuple[Path, ...] = (
    REPO_ROOT / "data" / "samples" / "train.jsonl",
    REPO_ROOT / "data" / "samples" / "eval.jsonl",
)
_FRONT = ("text", "lang", *LABELS, "n_labels", "n_chars", "n_words", "file")


def load_samples(paths: Iterable[Path | str] | Path | str | None = None) -> pd.DataFrame:
    """Labeled feature requests, indexed by ``id``, one boolean column per label.

    Columns: ``text``, ``lang``, the labels, ``n_labels``, ``n_chars``, ``n_words``, ``file``
    (the file's stem, e.g. ``train``) and every extra field of the records (e.g. ``voice``).
    Files are validated like training data (``training.data``); ids must be unique.
    Default: ``data/samples/train.jsonl`` and ``eval.jsonl``.

    >>> samples = load_samples()
    >>> samples.groupby("lang")[["security", "broad_value"]].sum()  # doctest: +SKIP
    """
    if paths is None:
        paths = SAMPLE_PATHS
    elif isinstance(paths, str | Path):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no files given: pass one or more JSON Lines paths (None: the samples)")
    rows: list[dict[str, Any]] = []
    for data_file in load_many([Path(p) for p in paths]):
        stem = Path(data_file.path).stem
        for sample in data_file.samples:
            extra = {k: v for k, v in sample.extra.items() if k not in _FRONT}
            labels = {label: label in sample.labels for label in LABELS}
            rows.append(
                {"id": sample.id, "text": sample.text, "lang": sample.lang, "file": stem}
                | labels
                | extra
            )
    frame = add_text_stats(pd.DataFrame(rows).set_index("id"))
    frame[list(LABELS)] = frame[list(LABELS)].astype(bool)
    return frame[[*_FRONT, *(c for c in frame.columns if c not in _FRONT)]]


def add_text_stats(frame: pd.DataFrame, column: str = "text") -> pd.DataFrame:
    """A copy with ``n_chars`` and ``n_words`` of ``column`` (and ``n_labels`` if labeled)."""
    frame = frame.copy()
    texts = frame[column].fillna("").astype(str)
    frame["n_chars"] = texts.str.len().astype(int)
    frame["n_words"] = texts.str.split().str.len().astype(int)
    if all(label in frame.columns for label in LABELS):
        frame["n_labels"] = frame[list(LABELS)].astype(bool).sum(axis=1).astype(int)
    return frame
