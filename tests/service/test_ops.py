"""Health, readiness, metrics, OpenAPI, logs, settings, store migrations."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from postgres_testing import on_both_backends
from service_testing import AUTH, REPO_ROOT
from test_inbox import SECURITY, intake
from test_suggest import assert_problem
from threadpoolctl import threadpool_info

from service.app import create_app
from service.demand import recount
from service.logs import JsonFormatter
from service.settings import Settings, SettingsError
from service.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    blind_review_selected,
    create_db_engine,
    schema_migrations,
)


@on_both_backends
def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}  # alive; nothing more claimed
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["database"] is True and ready["model_version"]
    for path in ("/healthz", "/readyz"):  # probes that send HEAD
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""


@on_both_backends
def test_metrics_cover_requests_latency_suggestions_model_and_agreement(
    client: TestClient,
) -> None:
    created = intake(client, SECURITY)
    client.post(
        f"/v1/requests/{created['id']}/review",
        json={"labels": created["suggestion"]["labels"], "reviewer": "jd"},
        headers=AUTH,
    )
    client.post("/v1/suggest", json={"text": "Bitte 2FA für das Admin-Portal"})
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'triage_http_requests_total{method="POST",route="/v1/suggest",status="200"}' in text
    assert "triage_http_request_duration_seconds_bucket" in text
    assert 'triage_suggestions_total{label="security"}' in text
    assert 'triage_suggestion_outcomes_total{outcome="security_fix"}' in text
    assert f'version="{created["model_version"]}"' in text
    assert "triage_review_agreement_ratio 1.0" in text
    assert "triage_reviews_total 1.0" in text


def test_openapi_has_german_and_english_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/suggest",
        "/v1/suggest/batch",
        "/v1/requests",
        "/v1/requests/{request_id}/review",
        "/v1/reviews/export",
        "/v1/model",
        "/v1/model/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in schema["paths"], path
    examples = schema["paths"]["/v1/suggest"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert any(k.startswith("de-") for k in examples)
    assert any(k.startswith("en-") for k in examples)
    names = set(schema["components"]["schemas"])
    assert {
        "SuggestIn",
        "SuggestionOut",
        "FeatureRequestIn",
        "ReviewIn",
        "ReviewOut",
        "ModelOut",
        "Problem",
    } <= names
    # Client generators name methods by operationId: each must be unique.
    ids = [op["operationId"] for item in schema["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_logs_are_json_with_request_ids_and_no_texts_at_info(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Geheimprojekt Zebra: Bitte 2FA für das Admin-Portal"
    with caplog.at_level(logging.INFO):
        intake(client, secret, partner="Muster IT")
        client.post("/v1/suggest", json={"text": secret})
        client.post("/v1/requests/1/review", json={"labels": [], "reviewer": "jd"}, headers=AUTH)
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("service")]
    assert lines
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "service.access"]
    assert access and all(e.get("request_id") for e in access)
    assert {"method", "path", "status", "duration_ms"} <= set(access[0])
    joined = "\n".join(lines)
    assert "Zebra" not in joined
    assert AUTH["X-API-Key"] not in joined


def test_a_worker_keeps_blas_to_one_thread(client: TestClient) -> None:
    """OpenBLAS's per-core threads spin beside the other workers: each worker keeps one."""
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_settings_from_env(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TRIAGE_MODEL_DIR": str(tmp_path),
            "TRIAGE_API_KEYS": "a, b,,",
            "TRIAGE_SUGGEST_OPEN": "false",
            "TRIAGE_CORS_ORIGINS": "https://a.example,https://b.example",
            "TRIAGE_MAX_TEXT_CHARS": "500",
            "TRIAGE_RELOAD_INTERVAL": "0.5",
            "TRIAGE_DEMAND_SIMILARITY": "0.7",
            "TRIAGE_SIMILAR_ACROSS_LANGUAGES": "0",
        }
    )
    assert settings.model_dir == tmp_path
    assert settings.api_keys == ("a", "b")
    assert settings.suggest_open is False
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.max_text_chars == 500
    assert settings.reload_interval == 0.5
    assert settings.demand_similarity == 0.7
    assert settings.similar_across_languages == 0
    defaults = Settings.from_env({})
    assert defaults.max_text_chars == 20_000 and defaults.batch_limit == 1_000
    assert defaults.cors_origins == () and defaults.suggest_open is True
    assert defaults.similar_across_languages == 2
    assert defaults.database_url.startswith("sqlite:///") and "/var/" in defaults.database_url
    for bad in (
        {"TRIAGE_SUGGEST_OPEN": "maybe"},
        {"TRIAGE_MAX_TEXT_CHARS": "lots"},
        {"TRIAGE_BLIND_REVIEW_SHARE": "2"},
        {"TRIAGE_DEMAND_SIMILARITY": "0"},
        {"TRIAGE_SIMILAR_ACROSS_LANGUAGES": "-1"},
        {"TRIAGE_SIMILAR_ACROSS_LANGUAGES": "two"},
        {"TRIAGE_DATABASE_URL": "mysql://root@db/triage"},
        # nan compares false with everything, so it would quietly switch these off, and an
        # endless interval stopped the watchers with an overflow.
        {"TRIAGE_RELOAD_INTERVAL": "inf"},
        {"TRIAGE_RELOAD_INTERVAL": "nan"},
        {"TRIAGE_RELOAD_INTERVAL": "1e308"},
        {"TRIAGE_BLIND_REVIEW_SHARE": "nan"},
        {"TRIAGE_UNCERTAINTY_BAND": "nan"},
        {"TRIAGE_UNCERTAINTY_BAND": "5"},
        {"TRIAGE_LOG_LEVEL": "bogus"},
    ):
        with pytest.raises(SettingsError):
            Settings.from_env(bad)
    with pytest.raises(SettingsError, match="not a whole number"):
        Settings.from_env({"TRIAGE_BATCH_LIMIT": "lots"})
    # Checked before any worker starts, and a password in the URL is never repeated.
    with pytest.raises(SettingsError, match="'bogus' is not supported") as caught:
        Settings.from_env({"TRIAGE_DATABASE_URL": "bogus://triage:s3cret@db/triage"})
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SettingsError, match="not a database URL"):
        Settings.from_env({"TRIAGE_DATABASE_URL": "triage.sqlite3"})
    url = "postgresql+psycopg://triage:pw@db:5432/triage"
    assert Settings.from_env({"TRIAGE_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("name", "meaning"),
    [
        ("TRIAGE_MAX_TEXT_CHARS", "refuse every text"),
        ("TRIAGE_BATCH_LIMIT", "refuse every non-empty batch"),
        ("TRIAGE_MAX_BODY_BYTES", "refuse every body"),
        ("TRIAGE_DEMAND_MIN_PARTNERS", "make every request broad demand"),
    ],
)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_limit_that_would_refuse_everything_is_refused_at_start(
    name: str, meaning: str, value: str
) -> None:
    # 0 once meant the default for some of these, everything refused for another, and 1 for
    # the last: none of it said so.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}: must be at least 1")
    assert meaning in message
    # The smallest body limit is the one a body with a 1-character text fits in.
    smallest = {"TRIAGE_MAX_TEXT_CHARS": "1", name: "12"} if "BODY" in name else {name: "1"}
    assert getattr(Settings.from_env(smallest), _FIELDS[name]) == int(smallest[name])
    # Unset or empty still means the default; 0 where it has a meaning is kept.
    assert Settings.from_env({name: ""}) == Settings.from_env({})
    assert Settings.from_env({"TRIAGE_SIMILAR_ACROSS_LANGUAGES": "0"}).similar_across_languages == 0
    assert Settings.from_env({"TRIAGE_RELOAD_INTERVAL": "0"}).reload_interval == 0


@pytest.mark.parametrize(
    ("env", "least"),
    [
        ({"TRIAGE_MAX_BODY_BYTES": "20010"}, 20_011),  # the default text limit
        ({"TRIAGE_MAX_TEXT_CHARS": "100000", "TRIAGE_MAX_BODY_BYTES": "65536"}, 100_011),
        ({"TRIAGE_MAX_TEXT_CHARS": "50000000"}, 50_000_011),  # the default body limit
    ],
)
def test_a_body_limit_that_leaves_no_room_for_the_longest_text_is_refused_at_start(
    env: dict[str, str], least: int
) -> None:
    # Every long text would get the body's 413, never the text's: the text limit would be
    # one no text can reach. The smallest body with a text of n characters, {"text":"…"}
    # in ASCII, has n + 11 bytes.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert "TRIAGE_MAX_BODY_BYTES" in message and "TRIAGE_MAX_TEXT_CHARS" in message
    assert f"at least {least}" in message
    fits = Settings.from_env({**env, "TRIAGE_MAX_BODY_BYTES": str(least)})
    assert fits.max_body_bytes - fits.max_text_chars == len(b'{"text":""}')
    # The defaults, and a tight body limit with a smaller text limit, are kept.
    assert Settings.from_env({}).max_body_bytes == 50_000_000
    sensible = {"TRIAGE_MAX_TEXT_CHARS": "20000", "TRIAGE_MAX_BODY_BYTES": "65536"}
    assert Settings.from_env(sensible).max_body_bytes == 65_536


def test_at_the_smallest_body_limit_the_longest_text_is_taken(
    make_client: Callable[..., TestClient],
) -> None:
    settings = Settings.from_env({"TRIAGE_MAX_TEXT_CHARS": "60", "TRIAGE_MAX_BODY_BYTES": "71"})
    client = make_client(
        max_text_chars=settings.max_text_chars, max_body_bytes=settings.max_body_bytes
    )
    headers = {"content-type": "application/json"}
    longest = json.dumps({"text": "Bitte 2FA " * 6}, separators=(",", ":"))
    assert len(longest.encode()) == 71
    assert client.post("/v1/suggest", content=longest, headers=headers).status_code == 200
    # One byte more is the body's 413; with one byte of room more, a text one character over
    # the limit gets the text's own 413.
    over = json.dumps({"text": "Bitte 2FA " * 6 + "!"}, separators=(",", ":"))
    assert_problem(client.post("/v1/suggest", content=over, headers=headers), 413, "body-too-large")
    roomier = make_client(max_text_chars=60, max_body_bytes=72)
    response = roomier.post("/v1/suggest", content=over, headers=headers)
    assert_problem(response, 413, "text-too-long")


_FIELDS = {
    "TRIAGE_MAX_TEXT_CHARS": "max_text_chars",
    "TRIAGE_BATCH_LIMIT": "batch_limit",
    "TRIAGE_MAX_BODY_BYTES": "max_body_bytes",
    "TRIAGE_DEMAND_MIN_PARTNERS": "demand_min_partners",
}


@on_both_backends
def test_migrations_are_recorded_and_idempotent(database_url: str, backend: str) -> None:
    store = Store(database_url)
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version() == SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema_migrations)).scalar() == (
            len(MIGRATIONS)
        )
        if backend == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert set(sa.inspect(store.engine).get_table_names()) >= {
        "schema_migrations",
        "feature_requests",
        "request_links",
        "reviews",
    }
    store.close()


@on_both_backends
def test_workers_starting_at_once_migrate_once(database_url: str) -> None:
    """Several workers (here: stores in threads) migrate one new database at the same moment."""
    stores = [Store(database_url) for _ in range(6)]
    start = threading.Barrier(len(stores))

    def migrate(store: Store) -> int:
        start.wait()
        return store.migrate()

    with ThreadPoolExecutor(len(stores)) as pool:
        assert list(pool.map(migrate, stores)) == [SCHEMA_VERSION] * len(stores)
    with stores[0].engine.connect() as conn:
        versions = conn.execute(sa.select(schema_migrations.c.version)).scalars().all()
    assert sorted(versions) == [m.version for m in MIGRATIONS]
    for store in stores:
        store.close()


def test_connections_opening_a_new_sqlite_file_together_all_get_wal(tmp_path: Path) -> None:
    """Switching to WAL is refused at once, not waited for, while another connection switches.

    Before the switch was retried, this test (200 rounds of six connections opening a new file
    together) failed in three runs of four; CI had met it once in the migration test above.
    """

    def connect(engine: sa.Engine, start: threading.Barrier) -> str:
        start.wait()
        with engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()

    for round_ in range(200):
        engines = [create_db_engine(f"sqlite:///{tmp_path / f'r{round_}.db'}") for _ in range(6)]
        start = threading.Barrier(len(engines))
        with ThreadPoolExecutor(len(engines)) as pool:
            modes = list(pool.map(connect, engines, [start] * len(engines)))
        assert modes == ["wal"] * len(engines)
        for engine in engines:
            engine.dispose()


@on_both_backends
def test_a_newer_schema_is_refused(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    with store.write() as conn:
        conn.execute(
            schema_migrations.insert().values(
                version=SCHEMA_VERSION + 1, name="from the future", applied_at="2099-01-01"
            )
        )
    with pytest.raises(RuntimeError, match="newer than this code"):
        store.migrate()
    store.close()


def _record(i: int) -> dict[str, object]:
    return {
        "received_at": f"2025-01-{i % 28 + 1:02d}T00:00:00.000000+00:00",
        "title": None,
        "text": f"Bitte 2FA für Mandant {i}",
        "partner": None,
        "customer": None,
        "source": None,
        "lang": "de",
        "model_version": "v",
        "suggestion": {},
        "suggested_labels": ["security"],
        "suggested_outcome": "security_fix",
        "margin": 0.3,
        "labels": ["security"],
        "outcome": "security_fix",
        "demand": {},
    }


@on_both_backends
def test_requests_from_schema_1_get_their_blind_review_chosen_once(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    ids = [store.add_request(_record(i), [], "v")[0] for i in range(40)]
    with store.write() as conn:  # back to schema 1: no blind_review column
        conn.exec_driver_sql("ALTER TABLE feature_requests DROP COLUMN blind_review")
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 2))
    store.close()
    store = Store(database_url)
    assert store.migrate() == SCHEMA_VERSION
    assert store.assign_blind_reviews(0.5) == len(ids)
    assert store.assign_blind_reviews(0.5) == 0  # chosen once, kept
    chosen = {request_id: store.get_request(request_id)["blind_review"] for request_id in ids}
    assert chosen == {i: blind_review_selected(i, 0.5) for i in ids}
    assert 0 < sum(chosen.values()) < len(ids)
    new_id, blind = store.add_request(_record(99), [], "v", blind_share=1.0)
    assert blind and store.get_request(new_id)["blind_review"] is True
    store.close()


@on_both_backends
def test_requests_from_schema_2_become_searchable_and_erasable(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    ids = [
        store.add_request({**_record(i), "partner": f"Nord-IT {i}"}, [], "v")[0] for i in range(3)
    ]
    with store.write() as conn:  # back to schema 2: no erased_at, no search_text
        for column in ("search_text", "erased_at"):
            conn.exec_driver_sql(f"ALTER TABLE feature_requests DROP COLUMN {column}")
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version > 2))
    store.close()
    store = Store(database_url)
    assert store.migrate() == SCHEMA_VERSION
    rows, total = store.list_requests(q="NORD-it 1")
    assert total == 1 and rows[0]["id"] == ids[1]
    assert store.list_requests(q="mandant")[1] == 3
    store.erase_request(ids[1], recount=recount)
    assert store.list_requests(q="mandant")[1] == 2
    store.close()


def test_each_log_record_is_one_json_line_after_the_command_lines_plain_setup() -> None:
    """``triage serve`` calls ``logging.basicConfig`` before the service configures logging."""
    code = (
        "import logging; from service.logs import configure_logging; "
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s'); "
        "configure_logging('INFO'); logging.getLogger('service.access').info('GET /healthz 200')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["msg"] == "GET /healthz 200"


def test_a_sqlite_file_deleted_while_serving_takes_no_more_writes(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    path = tmp_path / "triage.sqlite3"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    try:
        store.add_request(_record(1), [], "v")
        assert store.ping()
        for leftover in tmp_path.glob("triage.sqlite3*"):
            leftover.unlink()  # the open connections would write on into the deleted file
        with pytest.raises(OperationalError, match="deleted or replaced"):
            store.add_request(_record(2), [], "v")
        assert not store.ping()  # so /readyz says so
    finally:
        store.close()


def test_an_app_that_stopped_lets_its_model_go_at_once(settings: Settings) -> None:
    # The holder and the metrics held each other, and the app holds itself: the model of a
    # stopped app stayed until a full garbage collection, which seldom came. The test suite
    # grew by ~80 MB per app, to 15 GB.
    app = create_app(settings)
    enabled = gc.isenabled()
    gc.disable()
    try:
        with TestClient(app) as client:
            assert client.post("/v1/suggest", json={"text": SECURITY}).status_code == 200
            model = weakref.ref(app.state.triage.holder.model)
        assert model() is None
    finally:
        if enabled:
            gc.enable()
