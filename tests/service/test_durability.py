"""Real servers: concurrent writers across two workers, and SIGKILL between acknowledgements."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
from postgres_testing import on_both_backends
from service_testing import AUTH, Server

from service.store import create_db_engine

WRITERS = 8
REVIEWS = 2_000
LABELS = ["msp_configurable", "security", "broad_value"]


def make_requests(url: str, n: int) -> list[int]:
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        return [
            client.post(
                "/v1/requests", json={"text": f"Bitte 2FA für Mandant {i}", "partner": f"P{i}"}
            ).json()["id"]
            for i in range(n)
        ]


@on_both_backends
def test_eight_writers_store_2000_reviews_exactly_once(
    start_server: Callable[..., Server], database_url: str
) -> None:
    server = start_server(database_url=database_url, workers=2)
    request_ids = make_requests(server.url, 20)

    def writer(w: int) -> list[tuple[int, int]]:
        acked = []
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
            for i in range(w, REVIEWS, WRITERS):
                request_id = request_ids[i % len(request_ids)]
                body = {
                    "labels": [LABELS[i % 3]],
                    "reviewer": f"writer-{w}",
                    "comment": f"review {i}",
                }
                headers = {"Idempotency-Key": f"review-{i}"}
                response = client.post(
                    f"/v1/requests/{request_id}/review", json=body, headers=headers
                )
                assert response.status_code == 201, response.text
                if i % 50 == 0:  # a client retry must not store a second copy
                    again = client.post(
                        f"/v1/requests/{request_id}/review", json=body, headers=headers
                    )
                    assert again.status_code == 200
                    assert again.json()["id"] == response.json()["id"]
                acked.append((i, response.json()["id"]))
        return acked

    with ThreadPoolExecutor(WRITERS) as pool:
        acked = [pair for part in pool.map(writer, range(WRITERS)) for pair in part]
    assert len(acked) == REVIEWS
    assert len({review_id for _, review_id in acked}) == REVIEWS
    server.stop()
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT idempotency_key, comment FROM reviews").all()
        current = conn.exec_driver_sql(
            "SELECT f.id, f.current_review_id, f.labels, r.labels, "
            "(SELECT MAX(o.id) FROM reviews o WHERE o.request_id = f.id) "
            "FROM feature_requests f JOIN reviews r "
            "ON r.id = f.current_review_id AND r.request_id = f.id"
        ).all()
    engine.dispose()
    assert len(rows) == REVIEWS
    assert sorted(int(key.split("-")[1]) for key, _ in rows) == list(range(REVIEWS))
    assert all(comment == f"review {key.split('-')[1]}" for key, comment in rows)
    assert len(current) == len(request_ids)  # every request points at one of its own reviews
    for request_id, review_id, request_labels, review_labels, latest in current:
        # ... its latest one, whose labels it shows: concurrent reviews of one request queue
        assert review_id == latest, request_id
        assert json.loads(request_labels) == json.loads(review_labels), request_id


def test_acknowledged_reviews_survive_sigkill(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    server = start_server(database_url=database, workers=1)
    request_ids = make_requests(server.url, 5)
    acked: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    response = client.post(
                        f"/v1/requests/{request_ids[i % 5]}/review",
                        json={"labels": ["security"], "reviewer": "crash", "comment": str(i)},
                    )
                except httpx.TransportError:
                    return  # the server died mid-request: that review was never acknowledged
                if response.status_code == 201:
                    acked.append(response.json()["id"])
                i += 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(acked) < 100:
        threading.Event().wait(0.02)
    server.kill()  # SIGKILL while the writers are still writing
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert len(acked) >= 100

    restarted = start_server(database_url=database, workers=1)
    with httpx.Client(base_url=restarted.url, headers=AUTH, timeout=30) as client:
        stored = {
            review["id"]
            for request_id in request_ids
            for review in client.get(f"/v1/requests/{request_id}").json()["reviews"]
        }
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged reviews lost"
