"""Fixtures for the review page: the real service (with the page) on loopback, and Chromium.

The service runs in a thread with uvicorn, built by ``create_app`` plus ``mount_web``, on the
session's trained registry, a temp SQLite database and the service tests' API key. The browser
is Debian's ``/usr/bin/chromium`` driven by Playwright; without it the browser tests skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_testing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ThreadedServer, web_settings


@pytest.fixture(scope="session")
def web_server(
    tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path
) -> Iterator[ThreadedServer]:
    """One service with the page for the session; no blind reviews. Tests add their requests."""
    server = ThreadedServer(web_settings(tmp_path_factory.mktemp("web"), trained_model_dir))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_web(tmp_path: Path, trained_model_dir: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """``start_web(**settings_overrides)``: a service of its own, stopped after the test."""
    servers: list[ThreadedServer] = []

    def start(**overrides: Any) -> ThreadedServer:
        server = ThreadedServer(web_settings(tmp_path, trained_model_dir, **overrides))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
