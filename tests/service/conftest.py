"""Fixtures for the service: apps on the session's trained registry, real servers, databases.

Tests run on SQLite unless parametrized over ``backend`` (``@on_both_backends``), which
runs them on a throw-away PostgreSQL cluster as well (see ``postgres_testing``).
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from postgres_testing import PostgresCluster, find_bindir, unavailable
from service_testing import API_KEY, Server

from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the session; each test takes a new database of it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install -e '.[dev]'")
    bindir = find_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server (initdb, pg_ctl): apt-get install postgresql")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root, and there is no 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            unavailable("running as root, and runuser (util-linux) is missing")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def backend() -> str:
    """The store's database; ``@on_both_backends`` tests get "postgresql" as well."""
    return "sqlite"


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty database of the test's backend."""
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        return cluster.database()
    return f"sqlite:///{tmp_path / 'triage.sqlite3'}"


@pytest.fixture
def settings(tmp_path: Path, trained_model_dir: Path, database_url: str) -> Settings:
    return Settings(
        model_dir=trained_model_dir,
        database_url=database_url,
        api_keys=(API_KEY, "second-key"),
        api_key_file=tmp_path / "api-key",
        reload_interval=0,
    )


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**overrides)``: a started TestClient; closed at the end of the test."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(replace(settings, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def start_server(tmp_path: Path, trained_model_dir: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(database_url: str | None = None, workers: int = 1) -> Server:
        url = database_url or f"sqlite:///{tmp_path / 'server.sqlite3'}"
        server = Server(trained_model_dir, url, workers, tmp_path)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def registry_copy(tmp_path: Path, trained_model_dir: Path) -> Path:
    """A private copy of the trained registry, for tests that promote or tamper."""
    target = tmp_path / "models"
    shutil.copytree(trained_model_dir, target)
    return target
