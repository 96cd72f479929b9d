"""The served model: loading, verifying, hot reload, and micro-batching of suggestions.

``ModelHolder.model`` is swapped by a single reference assignment, which is atomic in Python:
a handler reads it once and finishes on that model even if a reload lands meanwhile. A model
that fails to load or verify never replaces the one serving.

Reloads are coalesced: one load runs at a time, and calls that come meanwhile do not each
queue a load of their own (a load holds a second model in memory for a while). A forced call
joins the one load queued behind the running one, since it must read ``CURRENT`` after the
call came; a poll of ``CURRENT`` joins whichever is there. Each call gets the outcome of the
load it joined, so twenty calls at once cost two loads, not twenty.

A call from the event loop (``POST /v1/model/reload?wait=true``) awaits that outcome without
a thread: the load runs in a thread of its own. Waiting in one of anyio's worker threads, as
many callers as it has (40) would hold them all for the seconds a load takes, and every
other sync route (suggest, intake, reviews) would wait behind them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from model import ArtifactError, Registry, Suggestion, TriageModel
from model.predictor import DEFAULT_ACROSS_LANGUAGES
from model.registry import ARTIFACT_NAME, MANIFEST_NAME

logger = logging.getLogger(__name__)

# A smoke test after the checksum: a model that loads but cannot suggest is refused too.
_SMOKE_TEXTS = ("Bitte 2FA für das Admin-Portal", "Please add CSV export to call reports")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def poll(
    name: str, interval: float, task: Callable[[], object], stop: threading.Event
) -> threading.Thread:
    """Run ``task`` every ``interval`` seconds in a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                task()
            except Exception:  # the thread must never die
                logger.exception("%s failed", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


# Seconds after which a version that failed to load is tried again though its files did not
# change: a failure may have been passing (memory, I/O).
RETRY_FAILED_AFTER = 60.0


@dataclass
class ReloadState:
    loaded_at: str | None = None
    last_reload_at: str | None = None
    last_reload_error: str | None = None
    failed_version: str | None = None
    failed_files: tuple[object, ...] = ()  # what the failed version's files looked like
    failed_at: float = 0.0  # time.monotonic() of the failure
    reloading: bool = False
    listeners: list[Callable[[TriageModel], None]] = field(default_factory=list)


@dataclass(frozen=True)
class ReloadOutcome:
    """What one load did, as every call that joined it is told."""

    swapped: bool
    version: str | None  # serving when the load had finished
    error: str | None  # why the load was refused; None if it was not


class _Load:
    """One pass of ``ModelHolder._reload``, shared by the calls that joined it."""

    def __init__(self, force: bool) -> None:
        self.force = force  # a forced call that joins before the load starts makes it forced
        # Awaited by threads (``result()``) and by the event loop (``asyncio.wrap_future``).
        # Running from the start, so a waiter that gives up (a client that hung up cancels
        # its wrapped future) cannot cancel it for the others.
        self.outcome: Future[ReloadOutcome] = Future()
        self.outcome.set_running_or_notify_cancel()


class ModelHolder:
    """The model a worker serves, and the machinery that replaces it."""

    def __init__(
        self,
        registry: Registry,
        uncertainty_band: float,
        across_languages: int = DEFAULT_ACROSS_LANGUAGES,
    ) -> None:
        self.registry = registry
        self.uncertainty_band = uncertainty_band
        self.across_languages = across_languages
        self.model: TriageModel | None = None
        self.state = ReloadState()
        self._load_lock = threading.Lock()  # held by the load that runs
        self._joining = threading.Lock()  # guards the two below
        self._running: _Load | None = None
        self._queued: _Load | None = None  # starts when the running one has finished
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.result_hook: Callable[[str], None] | None = None  # "ok" | "refused", for metrics

    def on_swap(self, listener: Callable[[TriageModel], None]) -> None:
        self.state.listeners.append(listener)

    def reload(self, force: bool = False) -> bool:
        """Load the registry's current version if it differs (or ``force``); True if swapped."""
        return self.reload_outcome(force).swapped

    def reload_outcome(self, force: bool = False) -> ReloadOutcome:
        """As ``reload``, with the serving version and the refusal, if any, of the load.

        Waits in the caller's thread, which runs the load unless it joins one (see the module's
        docstring). Failures are recorded, logged and leave the serving model in place.
        """
        load, first = self._join(force)
        if first:
            self._run(load)
        return load.outcome.result()

    async def reload_outcome_async(self, force: bool = False) -> ReloadOutcome:
        """As ``reload_outcome``, awaited in the event loop: the load runs in a thread of its
        own (unless the call joins one), and no thread waits for it."""
        load, first = self._join(force)
        if first:
            self._start(load)
        return await asyncio.wrap_future(load.outcome)

    def _join(self, force: bool) -> tuple[_Load, bool]:
        """The load this call shares, and whether the call made it (and so must run it).

        A forced call needs a load that reads ``CURRENT`` after the call came (it may follow
        a promotion), so it never joins the running load, only the queued one. A poll joins
        either: the next poll looks again.
        """
        with self._joining:
            if self._queued is not None:
                self._queued.force |= force
                return self._queued, False
            if self._running is not None and not force:
                return self._running, False
            self._queued = _Load(force)
            return self._queued, True

    def _run(self, load: _Load) -> None:
        with self._load_lock:  # the running load, if any, finishes first
            with self._joining:
                self._queued, self._running = None, load
                force = load.force
            self.state.reloading = True
            swapped = False
            try:
                swapped = self._reload(force)
            except Exception as exc:  # recorded like a refusal; the callers must not hang
                logger.exception("model reload failed")
                self._fail(None, f"reload failed: {exc!r}")
            finally:
                self.state.reloading = False
                outcome = ReloadOutcome(
                    swapped=swapped,
                    version=self.model.version if self.model else None,
                    error=self.state.last_reload_error,
                )
                with self._joining:
                    self._running = None
                load.outcome.set_result(outcome)

    def _reload(self, force: bool) -> bool:
        serving = self.model.version if self.model else None
        try:
            target = self.registry.current()
        except OSError as exc:
            self._fail(None, f"cannot read CURRENT in {self.registry.root}: {exc}")
            return False
        except ArtifactError as exc:
            self._fail(None, str(exc))
            return False
        if target is None:
            self._fail(
                None, f"no current model in {self.registry.root}; train one with `triage train`"
            )
            return False
        if not force and target == serving:
            # CURRENT names what is served again: an earlier refusal no longer applies.
            self.state.last_reload_error = None
            self.state.failed_version = None
            return False
        if not force and target == self.state.failed_version and not self._retry_due(target):
            return False
        self.state.last_reload_at = _now()
        started = time.perf_counter()
        try:
            candidate = self.registry.load(
                target,
                uncertainty_band=self.uncertainty_band,
                n_across_languages=self.across_languages,
            )
            candidate.suggest_many(list(_SMOKE_TEXTS), explain=True)
        except ArtifactError as exc:
            self._fail(target, str(exc))
            return False
        except Exception as exc:  # anything else a broken artifact can raise
            self._fail(target, f"model {target} failed its smoke test: {exc!r}")
            return False
        self.model = candidate  # the atomic swap
        self.state.loaded_at = _now()
        self.state.last_reload_error = None
        self.state.failed_version = None
        logger.info(
            "serving model %s (%d labels: %s), loaded in %.1f s%s",
            candidate.version,
            len(candidate.labels),
            ", ".join(candidate.labels),
            time.perf_counter() - started,
            f"; replaced {serving}" if serving else "",
            extra={"model_version": candidate.version},
        )
        if self.result_hook:
            self.result_hook("ok")
        for listener in self.state.listeners:
            try:
                listener(candidate)
            except Exception:
                logger.exception("model swap listener failed")
        return True

    def _files(self, version: str) -> tuple[object, ...]:
        """What a version's folder, manifest and artifact look like (changed by a copy)."""
        folder = self.registry.version_dir(version)
        seen: list[object] = []
        for path in (folder, folder / MANIFEST_NAME, folder / ARTIFACT_NAME):
            try:
                stat = path.stat()
                seen.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
            except OSError:
                seen.append(None)
        return tuple(seen)

    def _retry_due(self, version: str) -> bool:
        """Whether to try a version that failed again: its files changed (a copy that was
        still running finished), or a while has passed (a failure such as running out of
        memory may not recur). Else every worker that failed on it once would serve the old
        version until CURRENT names another, while the others serve the new one."""
        state = self.state
        if time.monotonic() - state.failed_at >= RETRY_FAILED_AFTER:
            return True
        try:
            return self._files(version) != state.failed_files
        except ArtifactError:
            return False

    def _fail(self, version: str | None, reason: str) -> None:
        self.state.last_reload_error = reason
        self.state.failed_version = version
        self.state.failed_at = time.monotonic()
        try:
            self.state.failed_files = self._files(version) if version else ()
        except ArtifactError:
            self.state.failed_files = ()
        self.state.last_reload_at = _now()
        if self.result_hook:
            self.result_hook("refused")
        logger.error(
            "model reload refused, still serving %s: %s",
            self.model.version if self.model else "nothing",
            reason,
        )

    def reload_in_background(self, force: bool = True) -> threading.Thread | None:
        """Start a load in a thread; None if the call joined one already running or queued."""
        load, first = self._join(force)
        return self._start(load) if first else None

    def _start(self, load: _Load) -> threading.Thread:
        """Run a load this call made in a thread of its own."""
        thread = threading.Thread(
            target=self._run, args=(load,), name="triage-model-reload", daemon=True
        )
        thread.start()
        return thread

    def start_watcher(self, interval: float) -> None:
        """Poll ``CURRENT`` every ``interval`` seconds; 0 turns polling off."""
        if interval > 0 and self._watcher is None:
            self._watcher = poll(
                "triage-model-watcher", interval, lambda: self.reload(force=False), self._stop
            )

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None


class SuggestBatcher:
    """Collects concurrent single suggestions into ``suggest_many`` calls.

    ``suggest_many`` is vectorised: 8 texts cost about as much as 3 single calls. While one
    batch runs in the model thread, new requests queue; the next batch takes them all (up to
    ``max_batch``). Nothing waits for a batch to fill, so a lone request is not delayed.
    """

    def __init__(self, holder: ModelHolder, max_batch: int = 16) -> None:
        self.holder = holder
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[tuple[TriageModel, Suggestion]]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-model")

    async def suggest(self, text: str) -> tuple[TriageModel, Suggestion]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[TriageModel, Suggestion]] = loop.create_future()
        self._pending.append((text, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                model = self.holder.model
                try:
                    if model is None:
                        raise RuntimeError("no model loaded")
                    texts = [text for text, _ in batch]
                    results = await loop.run_in_executor(
                        self._executor, _suggest_many, model, texts
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), suggestion in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result((model, suggestion))
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _suggest_many(model: TriageModel, texts: Sequence[str]) -> list[Suggestion]:
    return model.suggest_many(list(texts), explain=True)
