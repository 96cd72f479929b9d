"""``triage retrain``: reads reviewed requests from the service's store, hands them to training."""

from __future__ import annotations

from service.demand import compose
from service.store import Store, missing_sqlite_file
from training.retrain import ReviewedRequest


def reviewed_from_store(database_url: str) -> list[ReviewedRequest]:
    """Every reviewed request with its latest review: the only human-made training data.

    A SQLite file that does not exist is an error, not a store without reviews: a mistyped
    ``TRIAGE_DATABASE_URL`` would otherwise create an empty one (and its folders) and retrain
    as if nobody had reviewed anything.
    """
    if missing := missing_sqlite_file(database_url):
        raise FileNotFoundError(
            f"no database at {missing} (TRIAGE_DATABASE_URL / --database-url); the "
            "service creates it on its first start"
        )
    store = Store(database_url)
    try:
        store.migrate()
        return [
            ReviewedRequest(
                id=str(row["id"]),
                # What the model saw at intake and what the export writes: title, then text
                # (a body like "see subject" alone taught nothing, or the wrong thing).
                text=compose(row["title"], row["text"]),
                labels=tuple(row["labels"]),
                lang=row["lang"],
                suggested_labels=tuple(row["suggested_labels"]),
                blind=bool(row["blind"]),
                reviewed_at=row["reviewed_at"],
            )
            for row in store.reviewed_requests()
        ]
    finally:
        store.close()
