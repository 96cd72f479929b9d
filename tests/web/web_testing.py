"""Helpers for the page tests: the service with its page in a thread, and browser settings."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_testing import API_KEY, AUTH, REPO_ROOT, free_port

from service.app import create_app
from service.settings import Settings
from service.webpage import mount_web

__all__ = ["API_KEY", "AUTH", "REPO_ROOT", "ThreadedServer", "web_settings"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"  # git-ignored


def server_port() -> int:
    """A free loopback port: one of ``TRIAGE_TEST_PORTS`` ("8711-8719") when set, else any.

    Where several people share a machine each may be given ports of their own to use.
    """
    span = os.environ.get("TRIAGE_TEST_PORTS", "").strip()
    if not span:
        return free_port()
    first, _, last = span.partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as sock:
            # As uvicorn binds: a port a stopped server left in TIME_WAIT is free again.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in TRIAGE_TEST_PORTS={span}")


class ThreadedServer:
    """uvicorn serving one app in a daemon thread on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings)
        if not any(getattr(r, "path", None) == "/" for r in app.routes):
            mount_web(app, settings)  # until create_app wires the page in itself
        self.port = server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 60) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.thread.is_alive():
                raise RuntimeError("the service thread stopped during start-up")
            time.sleep(0.1)
        raise RuntimeError(f"service not ready after {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def web_settings(folder: Path, model_dir: Path, **overrides: Any) -> Settings:
    """The service tests' settings (API key, no polling) on a database in ``folder``."""
    fields: dict[str, Any] = {
        "model_dir": model_dir,
        "database_url": f"sqlite:///{folder / 'web.sqlite3'}",
        "api_keys": (API_KEY,),
        "api_key_file": folder / "api-key",
        "reload_interval": 0,
        "log_level": "WARNING",
        "blind_review_share": 0.0,
        **overrides,
    }
    return Settings(**fields)
