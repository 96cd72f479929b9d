"""Run the service with uvicorn: the function ``triage serve`` calls."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from service.logs import configure_logging, uvicorn_log_config
from service.security import resolve_api_keys
from service.settings import VAR_DIR, Settings

logger = logging.getLogger(__name__)


def serve(host: str, port: int, workers: int, model_dir: Path | None) -> None:
    """Start uvicorn with ``service.app:create_app`` as factory; returns when it stops.

    Settings come from ``TRIAGE_*`` variables; ``model_dir`` (if given) overrides
    ``TRIAGE_MODEL_DIR``. The API key file is created here, before the workers start, so that
    its path is logged once. With several workers, Prometheus metrics are collected across
    processes in ``PROMETHEUS_MULTIPROC_DIR`` (default ``var/prometheus/<port>``, emptied at
    start once the port is free),
    and (where the platform has ``SO_REUSEPORT``) each worker has a listening socket of its own.
    """
    if model_dir is not None:
        os.environ["TRIAGE_MODEL_DIR"] = str(model_dir)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    resolve_api_keys(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Emptied only once the port is known to be free: a second start that cannot listen
        # must not wipe the metrics of the service already running; one folder per port, so
        # two services of one checkout do not mix theirs.
        if port != 0:
            _refuse_taken_port(host, port)
        metrics_dir = VAR_DIR / "prometheus" / str(port)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    logger.info(
        "starting the triage service on http://%s:%d with %d worker(s); model dir %s",
        host,
        port,
        workers,
        settings.model_dir,
    )
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": uvicorn_log_config(settings.log_level),
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1 and port != 0 and hasattr(socket, "SO_REUSEPORT"):
        config = uvicorn.Config("service.app:create_app", **options)
        try:
            sockets = listening_sockets(host, port, workers)
        except OSError as exc:
            logger.error("cannot listen on %s:%d: %s", host, port, exc)
            raise SystemExit(1) from exc
        supervisor = SocketPerWorker(config, sockets)
        supervisor.run()
        if supervisor.startup_failed:  # as uvicorn.run exits with a single worker
            raise SystemExit(STARTUP_FAILURE)
    else:
        uvicorn.run("service.app:create_app", **options)


def _refuse_taken_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", host, port, exc)
        raise SystemExit(1) from exc


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address, each with its own accept queue.

    uvicorn's workers otherwise share one socket, and whichever wakes first accepts a whole
    burst of new connections: with keep-alive clients one worker can end up serving most of
    them while the other idles (in 2 of 15 ``benchmarks/load.py`` runs, 0.9 of the 2 cores
    busy and half the requests per second). With ``SO_REUSEPORT`` the kernel spreads
    new connections over the sockets by their address hash. A first plain bind fails if
    anything listens there already, so a second service cannot quietly share the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    logger.info("%d workers, one listening socket each (SO_REUSEPORT)", count)
    return sockets


class SocketPerWorker(Multiprocess):
    """uvicorn's worker supervisor (signals, health checks, restarts), but worker ``i``
    always serves ``sockets[i]`` alone, also after a restart."""

    startup_failed = False

    def _process(self, idx: int) -> Process:
        return Process(self.config, [self.sockets[idx]])

    def init_processes(self) -> None:
        for idx in range(len(self.sockets)):
            process = self._process(idx)
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        for idx, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # would fail the same way again
                logger.error("worker [%s] failed to start; stopping", process.pid)
                self.startup_failed = True
                self.should_exit.set()
                return
            logger.info("worker [%s] died; starting another on its socket", process.pid)
            self.processes[idx] = self._process(idx)
            self.processes[idx].start()

    def restart_all(self) -> None:
        """SIGHUP: replace each worker by a new one on the same socket, new one first."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._process(idx)
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                logger.error("new worker [%s] not ready in time; keeping [%s]", new.pid, old.pid)
                return
            old.terminate()
            old.join()
            self.processes[idx] = new
