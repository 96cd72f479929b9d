"""Helpers for the service tests: the test API key and a real server in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

API_KEY = "test-key-1"
AUTH = {"X-API-Key": API_KEY}
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``service.server.serve`` in a subprocess on a free loopback port."""

    def __init__(self, model_dir: Path, database_url: str, workers: int, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {
            **os.environ,
            "TRIAGE_MODEL_DIR": str(model_dir),
            "TRIAGE_DATABASE_URL": database_url,
            "TRIAGE_API_KEYS": API_KEY,
            "TRIAGE_RELOAD_INTERVAL": "0",
            "TRIAGE_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
        }
        (workdir / "prometheus").mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        code = (
            "from service.server import serve; "
            f"serve('127.0.0.1', {self.port}, {self.workers}, None)"
        )
        self.log = (self.workdir / f"server-{time.time_ns()}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; see {self.log.name}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s; see {self.log.name}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the supervisor and every worker, no cleanup."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
