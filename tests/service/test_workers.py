"""Several workers: one listening socket each, and a worker that dies is replaced on its socket."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from service_testing import Server, free_port

from service.server import listening_sockets

# Linux: SO_REUSEPORT spreads connections over the sockets, and /proc lists the workers.
pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT") or not Path("/proc/self/stat").exists(),
    reason="needs Linux (SO_REUSEPORT load balancing, /proc)",
)


def test_each_worker_gets_its_own_socket_on_the_same_port() -> None:
    port = free_port()
    sockets = listening_sockets("127.0.0.1", port, 3)
    try:
        assert len({s.fileno() for s in sockets}) == 3
        assert {s.getsockname() for s in sockets} == {("127.0.0.1", port)}
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        # A second service on the same port is refused, although it would be allowed to
        # join the first one's SO_REUSEPORT group and quietly take half its connections.
        with pytest.raises(OSError):
            listening_sockets("127.0.0.1", port, 2)
    finally:
        for sock in sockets:
            sock.close()


def test_a_port_taken_by_another_program_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            listening_sockets("127.0.0.1", other.getsockname()[1], 2)


def _workers(supervisor_pid: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    workers = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # not a process, or gone meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == supervisor_pid and b"spawn_main" in cmdline:
            workers.append(int(proc.name))
    return workers


def _answered(url: str) -> bool:
    """One request on a new connection (a new source port, so either socket may get it)."""
    try:
        with httpx.Client(timeout=5) as client:
            return client.get(url + "/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_a_killed_worker_is_replaced_and_its_socket_served_again(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(workers=2)
    assert server.process is not None
    workers = _workers(server.process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _workers(server.process.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no replacement worker: {_workers(server.process.pid)}")
    # Connections are spread over both sockets by their address hash: 40 new connections in
    # a row all answered means the dead worker's socket is served again. Until the
    # replacement has loaded the model, those that land on its socket wait (and time out).
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(_answered(server.url) for _ in range(40)):
            return
        time.sleep(1)
    pytest.fail("connections to the replaced worker's socket are not answered")


def test_workers_that_cannot_start_stop_the_service_with_a_failure_code(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    # A store that cannot be opened fails every worker's startup the same way; the service
    # must then stop with uvicorn's startup-failure code, as with one worker, not with 0
    # (a supervisor would take 0 for a clean stop and not restart or alert).
    server = Server(trained_model_dir, "sqlite:////proc/no-such-dir/x.sqlite3", 2, tmp_path)
    with pytest.raises(RuntimeError, match="server exited with 3"):
        server.start(timeout=60)


def test_a_start_that_cannot_listen_leaves_the_running_services_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import service.server as server

    port = free_port()
    monkeypatch.setattr(server, "VAR_DIR", tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("TRIAGE_API_KEYS", "k")
    running = tmp_path / "prometheus" / str(port)  # what the service on the port writes
    running.mkdir(parents=True)
    (running / "counter_1.db").write_bytes(b"counts")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(SystemExit):
            server.serve("127.0.0.1", port, 2, None)
    assert (running / "counter_1.db").read_bytes() == b"counts"
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
