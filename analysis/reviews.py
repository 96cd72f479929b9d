"""Reviewed feature requests of the service's inbox (``service.store``) as one DataFrame."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import sqlalchemy as sa

from analysis.data import add_text_stats
from analysis.frames import columns_from_lists
from model.estimator import LABELS
from service.demand import compose
from service.settings import default_database_url
from service.store import Store, missing_sqlite_file

_COLUMNS = (
    "received_at",
    "reviewed_at",
    "lang",
    "source",
    "partner",
    "customer",
    "title",
    "text",
    *LABELS,
    *(f"suggested_{label}" for label in LABELS),
    "labels_agreed",
    "outcome",
    "suggested_outcome",
    "reviewer",
    "blind",
    "model_version",
)


# Columns of text (some may be missing: None); without rows nothing tells pandas so.
_TEXT_COLUMNS = (
    "lang",
    "source",
    "partner",
    "customer",
    "title",
    "text",
    "outcome",
    "suggested_outcome",
    "reviewer",
    "model_version",
)


class ReviewStoreError(RuntimeError):
    """The database cannot be read as a review store; the message says what to do."""


def load_reviews(database_url: str | None = None) -> pd.DataFrame:
    """Every reviewed feature request with its current review, indexed by the request ``id``.

    Label columns (``security``, …) hold the reviewer's labels, ``suggested_<label>`` the
    model's at intake; ``labels_agreed`` is true when the two sets are equal. ``text`` is what
    the model saw (title, blank line, text), ``received_at`` and ``reviewed_at`` are UTC
    timestamps, ``outcome`` is the reviewer's outcome or, if none was given, the suggested one.
    Only reads: the database is never created or migrated here.
    Default URL: ``TRIAGE_DATABASE_URL``, else the service's default SQLite file.

    >>> reviews = load_reviews("sqlite:///var/triage.sqlite3")  # doctest: +SKIP
    >>> reviews.groupby("blind")["labels_agreed"].mean()        # doctest: +SKIP
    """
    url = database_url or _configured_url()
    try:
        parsed = sa.engine.make_url(url)
        parsed.get_dialect()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ReviewStoreError(
            f"not a database URL the review store can use: {exc}; expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or missing_sqlite_file(parsed):
            raise ReviewStoreError(
                f"no SQLite review store at {database or '(memory)'}; pass the URL of the "
                "service's database (TRIAGE_DATABASE_URL)"
            )
    store = Store(url)
    try:
        rows = list(store.reviewed_requests())
    except sa.exc.DBAPIError as exc:
        raise ReviewStoreError(
            f"cannot read reviews from {parsed.render_as_string(hide_password=True)}: "
            f"{exc.orig}; is it the service's database (started at least once)?"
        ) from exc
    finally:
        store.close()
    return reviews_frame(rows)


def reviews_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Turn rows of ``Store.reviewed_requests()`` into the frame ``load_reviews`` returns."""
    index = pd.Index([int(r["id"]) for r in rows], name="id", dtype="int64")
    frame = pd.DataFrame(
        {
            "received_at": pd.to_datetime([r["received_at"] for r in rows], utc=True),
            "reviewed_at": pd.to_datetime([r["reviewed_at"] for r in rows], utc=True),
            "lang": [r["lang"] for r in rows],
            "source": [r["source"] for r in rows],
            "partner": [r.get("partner") for r in rows],
            "customer": [r.get("customer") for r in rows],
            "title": [r["title"] for r in rows],
            "text": [compose(r["title"], r["text"]) for r in rows],
            "outcome": [r["outcome"] or r["suggested_outcome"] for r in rows],
            "suggested_outcome": [r["suggested_outcome"] for r in rows],
            "reviewer": [r["reviewer"] for r in rows],
            "blind": pd.array([bool(r["blind"]) for r in rows], dtype=bool),
            "model_version": [r["model_version"] for r in rows],
        },
        index=index,
    )
    if not rows:  # else all float64; only here, since astype(str) spells a None "None" in pandas 2
        frame = frame.astype(dict.fromkeys(_TEXT_COLUMNS, str))
    reviewed = columns_from_lists([r["labels"] for r in rows], index=index)
    suggested = columns_from_lists(
        [r["suggested_labels"] for r in rows], index=index, prefix="suggested_"
    )
    frame = frame.join(reviewed).join(suggested)
    frame["labels_agreed"] = (reviewed.to_numpy() == suggested.to_numpy()).all(axis=1)
    frame = add_text_stats(frame)
    rest = [c for c in frame.columns if c not in _COLUMNS]
    return frame[[*_COLUMNS, *rest]].sort_values(["received_at"], kind="stable")


def _configured_url() -> str:
    return os.environ.get("TRIAGE_DATABASE_URL") or default_database_url()
