"""Hot reload: a promoted version is picked up; a broken one is refused, the old one serves."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from service_testing import AUTH

from model import Registry
from model.registry import write_atomic
from service.runtime import ReloadOutcome


def clone_version(root: Path, suffix: str) -> str:
    """A second version: the current one copied under a new, later id (same checksum)."""
    registry = Registry(root)
    source = registry.current()
    assert source
    version = f"{source}-{suffix}"
    shutil.copytree(registry.version_dir(source), registry.version_dir(version))
    manifest_path = registry.version_dir(version) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = version
    manifest_path.write_text(json.dumps(manifest))
    return version


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_promoted_version_is_picked_up_by_the_watcher(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    client = make_client(model_dir=registry_copy, reload_interval=0.2)
    before = client.get("/v1/model").json()
    assert before["version"] == Registry(registry_copy).current()
    assert before["last_reload_error"] is None
    assert before["labels"] == ["msp_configurable", "security", "broad_value"]
    assert before["metrics"] and before["thresholds"] and before["trained_at"]
    assert before["data"]["train"]
    new = clone_version(registry_copy, "b")
    Registry(registry_copy).promote(new)
    wait_for(lambda: client.get("/v1/model").json()["version"] == new)
    answer = client.post("/v1/suggest", json={"text": "Bitte 2FA für das Admin-Portal"}).json()
    assert answer["model_version"] == new


def test_tampered_version_is_refused_and_the_old_one_keeps_serving(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    client = make_client(model_dir=registry_copy, reload_interval=0.2)
    serving = client.get("/v1/model").json()["version"]
    bad = clone_version(registry_copy, "tampered")
    artifact = Registry(registry_copy).version_dir(bad) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"evil")
    # promote() would refuse it; a broken CURRENT can still happen (hand edit, partial sync).
    write_atomic(registry_copy / "CURRENT", (bad + "\n").encode())
    wait_for(lambda: client.get("/v1/model").json()["last_reload_error"] is not None)
    card = client.get("/v1/model").json()
    assert card["version"] == serving
    assert card["registry_current"] == bad
    assert "SHA-256" in card["last_reload_error"]
    answer = client.post("/v1/suggest", json={"text": "Bitte 2FA für das Admin-Portal"})
    assert answer.status_code == 200 and answer.json()["model_version"] == serving
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'triage_model_reloads_total{result="refused"}' in metrics
    # Fixing CURRENT recovers without a restart; an explicit reload clears the error.
    write_atomic(registry_copy / "CURRENT", (serving + "\n").encode())
    reload = client.post("/v1/model/reload", params={"wait": True}, headers=AUTH)
    assert reload.status_code == 200
    assert reload.json()["last_reload_error"] is None
    assert client.get("/v1/model").json()["last_reload_error"] is None


def test_a_version_that_was_incomplete_is_tried_again_once_its_files_change(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    client = make_client(model_dir=registry_copy, reload_interval=0.2)
    late = clone_version(registry_copy, "late")
    artifact = Registry(registry_copy).version_dir(late) / "model.joblib"
    staged = registry_copy / "model.joblib.copying"
    artifact.rename(staged)  # a copy of the version that has not finished yet
    write_atomic(registry_copy / "CURRENT", (late + "\n").encode())
    wait_for(lambda: "missing" in (client.get("/v1/model").json()["last_reload_error"] or ""))
    staged.rename(artifact)  # the copy finishes: every worker must take it, not only one
    wait_for(lambda: client.get("/v1/model").json()["version"] == late)
    assert client.get("/v1/model").json()["last_reload_error"] is None


def test_reload_endpoint_loads_in_the_background(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    client = make_client(model_dir=registry_copy)  # no polling
    new = clone_version(registry_copy, "c")
    Registry(registry_copy).promote(new)
    time.sleep(0.3)
    assert client.get("/v1/model").json()["version"] != new
    started = client.post("/v1/model/reload", headers=AUTH)
    assert started.status_code == 202
    assert started.json()["status"] == "started"
    wait_for(lambda: client.get("/v1/model").json()["version"] == new)


def test_reload_wait_reports_a_refusal(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    client = make_client(model_dir=registry_copy)
    serving = client.get("/v1/model").json()["version"]
    write_atomic(registry_copy / "CURRENT", b"no-such-version\n")
    answer = client.post("/v1/model/reload", params={"wait": True}, headers=AUTH).json()
    assert answer["status"] == "failed"
    assert answer["version"] == serving
    assert "no-such-version" in answer["last_reload_error"]
    # A CURRENT that is not even text: refused the same way, and the card still answers.
    write_atomic(registry_copy / "CURRENT", b"\xff\xfe x")
    answer = client.post("/v1/model/reload", params={"wait": True}, headers=AUTH).json()
    assert (answer["status"], answer["version"]) == ("failed", serving)
    assert "not UTF-8" in answer["last_reload_error"]
    card = client.get("/v1/model")
    assert card.status_code == 200 and card.json()["registry_current"] is None
    # CURRENT names the served version again: the refusal no longer stands, also for the
    # watcher's poll, which does not load the served version again.
    write_atomic(registry_copy / "CURRENT", f"{serving}\n".encode())
    assert client.app.state.triage.holder.reload(force=False) is False
    card = client.get("/v1/model").json()
    assert card["last_reload_error"] is None and card["version"] == serving


def test_in_flight_suggestions_finish_during_swaps(
    make_client: Callable[..., TestClient], registry_copy: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = make_client(model_dir=registry_copy)
    versions = [Registry(registry_copy).current(), clone_version(registry_copy, "d")]

    def flip(i: int) -> None:
        Registry(registry_copy).promote(versions[i % 2])
        client.post("/v1/model/reload", params={"wait": True}, headers=AUTH)

    def ask(i: int) -> int:
        return client.post("/v1/suggest", json={"text": f"Bitte 2FA Nummer {i}"}).status_code

    with ThreadPoolExecutor(6) as pool:
        flips = pool.map(flip, range(4))
        codes = list(pool.map(ask, range(60)))
        list(flips)
    assert set(codes) == {200}


def test_without_any_model_the_service_starts_but_is_not_ready(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(model_dir=tmp_path / "empty-registry")
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    response = client.post("/v1/suggest", json={"text": "2FA"})
    assert response.status_code == 503
    assert "triage train" in response.json()["detail"]
    assert client.get("/v1/model").json()["last_reload_error"]


class _CountedLoads:
    """Counts the holder's model loads; the first one lasts until ``release()``."""

    def __init__(self, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        holder = client.app.state.triage.holder
        self.registry = holder.registry
        self.versions: list[str] = []
        self.forced_calls = 0  # reload calls (not the watcher's polls) that have joined a load
        self._real = self.registry.load
        self._release = threading.Event()
        monkeypatch.setattr(self.registry, "load", self._load)
        join = holder._join

        counting = threading.Lock()

        def counted_join(force: bool) -> Any:
            joined = join(force)
            with counting:
                self.forced_calls += force
            return joined

        monkeypatch.setattr(holder, "_join", counted_join)

    def _load(self, version: str, **kwargs: Any) -> Any:
        self.versions.append(version)
        if len(self.versions) == 1:
            self._release.wait(timeout=60)
        return self._real(version, **kwargs)

    def release(self) -> None:
        self._release.set()


def _reload_during_a_load(
    client: TestClient,
    loads: _CountedLoads,
    between: Callable[[], None],
    wait: bool,
    more: int = 19,
    while_held: Callable[[ThreadPoolExecutor, Future[Any]], None] | None = None,
) -> tuple[Any, list[Any]]:
    """One reload call, then ``between()``, then ``more`` calls while the first call's load
    runs; once all have come, ``while_held(pool, first)`` before the load may finish."""
    params = {"wait": wait}
    with ThreadPoolExecutor(more + 4) as pool:
        try:
            first = pool.submit(client.post, "/v1/model/reload", params=params, headers=AUTH)
            wait_for(lambda: bool(loads.versions))  # the first load has read CURRENT
            between()
            rest = [
                pool.submit(client.post, "/v1/model/reload", params=params, headers=AUTH)
                for _ in range(more)
            ]
            wait_for(lambda: loads.forced_calls == more + 1)  # all came while it ran
            if while_held is not None:
                while_held(pool, first)
        finally:
            loads.release()
        return first.result(), [answer.result() for answer in rest]


def test_concurrent_reloads_share_loads_and_each_gets_its_answer(
    make_client: Callable[..., TestClient],
    registry_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(model_dir=registry_copy)
    serving = client.get("/v1/model").json()["version"]
    new = clone_version(registry_copy, "coalesced")
    loads = _CountedLoads(client, monkeypatch)
    first, rest = _reload_during_a_load(
        client, loads, lambda: Registry(registry_copy).promote(new), wait=True
    )
    # 20 calls, 2 loads: the one running when they came, and one more that all the calls
    # promoted meanwhile share (a load begun before them could miss the promotion).
    assert loads.versions == [serving, new]
    assert first.json() == {"status": "unchanged", "version": serving, "last_reload_error": None}
    for answer in rest:
        assert answer.status_code == 200
        assert answer.json() == {"status": "loaded", "version": new, "last_reload_error": None}
    assert client.get("/v1/model").json()["version"] == new


def test_concurrent_reloads_of_a_refused_version_each_get_the_refusal(
    make_client: Callable[..., TestClient],
    registry_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(model_dir=registry_copy)
    serving = client.get("/v1/model").json()["version"]
    bad = clone_version(registry_copy, "refused")
    artifact = Registry(registry_copy).version_dir(bad) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"evil")
    loads = _CountedLoads(client, monkeypatch)

    def break_current() -> None:
        write_atomic(registry_copy / "CURRENT", (bad + "\n").encode())

    first, rest = _reload_during_a_load(client, loads, break_current, wait=True)
    assert loads.versions == [serving, bad]
    assert first.json()["status"] == "unchanged"
    for answer in rest:
        body = answer.json()
        assert (body["status"], body["version"]) == ("failed", serving)
        assert "SHA-256" in body["last_reload_error"]
    assert client.get("/v1/model").json()["version"] == serving


def test_concurrent_background_reloads_share_loads(
    make_client: Callable[..., TestClient],
    registry_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(model_dir=registry_copy)
    serving = client.get("/v1/model").json()["version"]
    new = clone_version(registry_copy, "background")
    loads = _CountedLoads(client, monkeypatch)
    first, rest = _reload_during_a_load(
        client, loads, lambda: Registry(registry_copy).promote(new), wait=False
    )
    assert {answer.json()["status"] for answer in [first, *rest]} == {"started"}
    wait_for(lambda: client.get("/v1/model").json()["version"] == new)
    wait_for(lambda: not client.get("/v1/model").json()["reloading"])
    time.sleep(0.5)  # a load started late would have shown by now
    assert loads.versions == [serving, new]


def test_callers_waiting_for_a_reload_hold_no_worker_thread(
    make_client: Callable[..., TestClient],
    registry_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sync routes run in anyio's worker threads (40 by default; 3 here, so that a few callers
    # stand for forty). Callers of ?wait=true that each held one while a load ran would leave
    # none for the other routes until the load had finished.
    client = make_client(model_dir=registry_copy)
    serving = client.get("/v1/model").json()["version"]

    async def few_worker_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 3

    assert client.portal is not None
    client.portal.call(few_worker_threads)
    new = clone_version(registry_copy, "unstarved")
    loads = _CountedLoads(client, monkeypatch)

    def sync_routes_answer(pool: ThreadPoolExecutor, first: Future[Any]) -> None:
        # Six callers wait, twice as many as there are worker threads; sync routes still
        # answer at once: the card, the inbox, an intake.
        card = pool.submit(client.get, "/v1/model").result(timeout=10)
        assert card.status_code == 200 and card.json()["reloading"] is True
        listed = pool.submit(client.get, "/v1/requests", headers=AUTH).result(timeout=10)
        assert listed.status_code == 200
        created = pool.submit(
            client.post, "/v1/requests", json={"text": "Bitte 2FA"}, headers=AUTH
        ).result(timeout=10)
        assert created.status_code == 201
        assert not first.done()  # all that while, the load was still held

    first, rest = _reload_during_a_load(
        client,
        loads,
        lambda: Registry(registry_copy).promote(new),
        wait=True,
        more=5,
        while_held=sync_routes_answer,
    )
    assert first.json()["status"] == "unchanged"
    for answer in rest:
        assert answer.json() == {"status": "loaded", "version": new, "last_reload_error": None}
    assert loads.versions == [serving, new]  # coalesced as before: two loads for six calls


def test_a_waiter_that_gives_up_leaves_the_load_to_the_others(
    make_client: Callable[..., TestClient],
    registry_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client that hangs up cancels its wait (its task); the load it shares goes on, and the
    # other callers still get its outcome.
    client = make_client(model_dir=registry_copy)
    holder = client.app.state.triage.holder
    new = clone_version(registry_copy, "abandoned")
    Registry(registry_copy).promote(new)
    loads = _CountedLoads(client, monkeypatch)

    async def one_gives_up() -> tuple[Any, Any]:
        leaving = asyncio.ensure_future(holder.reload_outcome_async(force=True))
        while not loads.versions:  # its load has begun
            await asyncio.sleep(0.05)
        staying = asyncio.ensure_future(holder.reload_outcome_async())  # joins that load
        await asyncio.sleep(0.1)
        leaving.cancel()
        await asyncio.sleep(0.1)
        loads.release()
        return await asyncio.gather(leaving, staying, return_exceptions=True)

    left, stayed = asyncio.run(one_gives_up())
    assert isinstance(left, asyncio.CancelledError)
    assert stayed == ReloadOutcome(swapped=True, version=new, error=None)
    assert loads.versions == [new] and holder.model.version == new
