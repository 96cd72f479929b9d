"""Which stored requests were erased, as this worker last read it from the store.

``DELETE /v1/requests/{id}`` erases a request in the store at once (``Store.erase_request``),
and counts again the demand stored with the later requests that counted it
(``service.demand.recount``).
Two copies live outside the store, in each worker's memory, and follow from here:
- the near-duplicate index of the demand signal holds the request's vector and partner:
  ``DemandIndex`` refreshes this before every intake and leaves erased requests out;
- a model trained on the request's review holds its text as a similar past request
  (``reviewed_sample_id``) until the next retraining, which no longer collects it: answers
  leave such entries out (``hidden``), within ``TRIAGE_RELOAD_INTERVAL`` seconds in every
  worker and at once in the one that erased it.

Erasure only ever grows, so the count of erased requests tells whether anything changed, and
the ids are read again only then.

An intake finds its near-duplicates and similar past requests before it stores them, so an
erasure may come in between: ``Store.add_request`` looks them up again in its transaction,
which erasures wait for (and it for them), and the intake then stores its demand counts and
suggestion without the requests erased meanwhile.
"""

from __future__ import annotations

import threading

from model import reviewed_sample_id
from service.runtime import poll
from service.store import Store


class Erasures:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._count = 0
        self.ids: frozenset[int] = frozenset()
        self.hidden: frozenset[str] = frozenset()  # ids of similar past requests to leave out
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def refresh(self) -> None:
        """Read the erased ids again if more requests were erased since the last look."""
        with self._lock:
            count = self.store.erased_count()
            if count == self._count:
                return
            ids = self.store.erased_ids()
            self.ids = ids
            self.hidden = frozenset(reviewed_sample_id(i) for i in ids)
            self._count = count

    def start_watcher(self, interval: float) -> None:
        """Refresh every ``interval`` seconds; 0 turns polling off."""
        if interval > 0 and self._watcher is None:
            self._watcher = poll("triage-erasure-watcher", interval, self.refresh, self._stop)

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
