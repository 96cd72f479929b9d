"""Fixtures for the service: apps on the session's trained registry, and real servers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_testing import API_KEY, Server

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, trained_model_dir: Path) -> Settings:
    return Settings(
        model_dir=trained_model_dir,
        database_url=f"sqlite:///{tmp_path / 'triage.sqlite3'}",
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

    def start(database: Path | None = None, workers: int = 1) -> Server:
        server = Server(
            trained_model_dir, database or tmp_path / "server.sqlite3", workers, tmp_path
        )
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
