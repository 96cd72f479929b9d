"""``triage retrain``: reads reviewed requests from the service's store, hands them to training."""

from __future__ import annotations

from service.store import Store
from training.retrain import ReviewedRequest


def reviewed_from_store(database_url: str) -> list[ReviewedRequest]:
    """Every reviewed request with its latest review: the only human-made training data."""
    store = Store(database_url)
    try:
        store.migrate()  # a store the service has not created yet simply has no reviews
        return [
            ReviewedRequest(
                id=str(row["id"]),
                text=row["text"],
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
