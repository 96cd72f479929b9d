"""Load test of ``POST /v1/suggest`` over loopback: latency percentiles, throughput, errors.

    python benchmarks/load.py                       # against http://127.0.0.1:8000
    python benchmarks/load.py --start --workers 2   # start the service itself first

Defaults: 20,000 requests, 32 concurrent keep-alive connections, after 500 warm-up requests
(not counted). The client is a minimal HTTP/1.1 client (an asyncio protocol per connection,
httptools to parse the answers, uvloop where installed), so that on a 2-core machine as little
CPU as possible goes to the load generator instead of the service.

Texts: a built-in mix of German and English feature requests of different lengths, or
``--texts FILE`` (JSON Lines with a ``text`` field, e.g. ``data/samples/eval.jsonl``).
Goal on the 2-core machine (issue 3): p50 <= 10 ms, p99 <= 50 ms, >= 500 req/s, 0 errors.

Besides latency it prints the CPU time per request of the load client and (with ``--start``)
of the service's processes: on a shared 2-core machine that says more than requests per
second alone, which move with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httptools

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

TEXTS = [
    "Bitte 2FA für das Admin-Portal",
    "Kunde möchte eine andere Wartemusik für die Hotline-Queue, geht das?",
    "Wie richten wir eine Feiertagsumleitung für die Zentrale ein?",
    "Viele unserer Kunden wünschen sich eine native Integration mit Microsoft Teams, das würde "
    "allen viel Zeit sparen.",
    "Pentest-Ergebnis: Im Admin-Portal gibt es keine Sperre nach Fehlversuchen beim Login.",
    "Ein Tetris-Spiel auf dem Telefon für den Chef, Spaß muss sein",
    "Customer wants different hold music for the support queue, how do we set that up?",
    "Native HubSpot integration would save all our customers time",
    "Former employee can still log into the app, please fix",
    "Pink phones for one customer's office, purely cosmetic",
    "Please add an API to create users from our own provisioning tools; every partner would "
    "use it on every project and it would save hours per rollout.",
    "Our auditor requires that call recordings are deleted after 90 days (GDPR). Is there a "
    "retention setting per tenant, or does this need a product change?",
    "Copy a site's whole configuration to a new site in one step",
    "Send a daily call report to the customer's manager",
    "Die Anrufliste soll als CSV exportiert werden können, für alle Mandanten.",
    "SRTP für alle Tischtelefone erzwingen – wo stellt man das ein?",
]


def load_texts(path: Path | None) -> list[str]:
    if path is None:
        return TEXTS
    texts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


class Counter:
    def __init__(self, total: int) -> None:
        self.total = total
        self.next = 0

    def take(self) -> int | None:
        if self.next >= self.total:
            return None
        self.next += 1
        return self.next - 1


TIMEOUT = 30.0  # seconds per request


class _Run:
    """What the connections of one run share: the requests to send and what came back."""

    def __init__(self, messages: list[bytes], n: int) -> None:
        self.messages = messages
        self.counter = Counter(n)
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: writes a request, parses the answer
    with httptools as it arrives, records it and writes the next one, all in the protocol's
    callbacks. No task and no timer per request: one watchdog timer per connection checks the
    30 s timeout of the request in flight and re-arms itself for the time left."""

    def __init__(self, run: _Run, first: int, started: float) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.first = first
        self.started: float | None = started  # when the request in flight was written
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        self.transport: asyncio.Transport
        self.watchdog: asyncio.TimerHandle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.watchdog = self.loop.call_later(TIMEOUT, self.watch)
        transport.write(self.run.messages[self.first % len(self.run.messages)])

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(type(exc).__name__)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        run = self.run
        if self.started is None:  # an answer to no request
            self.transport.abort()
            return
        run.latencies.append(time.perf_counter() - self.started)
        status = self.parser.get_status_code()
        if status != 200 or b'"model_version"' not in self.body:
            run.error(f"HTTP {status}")
        self.body.clear()
        i = run.counter.take()
        if i is None:
            self.started = None
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(run.messages[i % len(run.messages)])

    def watch(self) -> None:
        if self.started is None:
            self.watchdog = self.loop.call_later(TIMEOUT, self.watch)
        elif (left := self.started + TIMEOUT - time.perf_counter()) > 0:
            self.watchdog = self.loop.call_later(left, self.watch)
        else:
            self.fail("TimeoutError")

    def fail(self, kind: str) -> None:
        if self.started is not None:
            self.run.error(kind)
            self.started = None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.watchdog.cancel()
        if self.started is not None:  # closed with a request in flight
            self.run.error(type(exc).__name__ if exc is not None else "ConnectionError")
            self.started = None
        self.closed.set_result(None)


async def _connection(host: str, port: int, run: _Run) -> None:
    """Connects, and again after each failed request, until the run's requests are taken."""
    loop = asyncio.get_running_loop()
    while (i := run.counter.take()) is not None:
        started = time.perf_counter()
        try:
            _, connection = await loop.create_connection(
                functools.partial(_Connection, run, i, started), host, port
            )
        except OSError as exc:
            run.error(type(exc).__name__)
            continue
        await connection.closed


async def run_load(
    url: str, n: int, concurrency: int, texts: list[str], api_key: str | None = None
) -> tuple[list[float], dict[str, int], float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path.rstrip("/") or "") + "/v1/suggest"
    headers = f"X-API-Key: {api_key}\r\n".encode() if api_key else b""
    messages = []
    for text in texts:
        body = json.dumps({"text": text}, ensure_ascii=False).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        messages.append(head + headers + b"\r\n" + body)
    run = _Run(messages, n)
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, run) for _ in range(concurrency)))
    return run.latencies, run.errors, time.perf_counter() - started


def run_on_uvloop(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop's event loop where it is installed: less client CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def start_service(host: str, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """The service as the README starts it: ``triage serve``, which first trains a default
    model from data/samples if the registry is empty (uvicorn, ``workers`` processes).

    Its log level is the README's too (``TRIAGE_LOG_LEVEL`` as set, else INFO: one access
    line per request), so writing the log is part of what is measured; the log goes to
    ``log``, as a deployment sends it to a file or the journal rather than a terminal.
    """
    command = [sys.executable, "-m", "triage_cli.main", "serve", "--host", host]
    command += ["--port", str(port), "--workers", str(workers)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=sink, stderr=sink, start_new_session=True
        )


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU of every live process in a process group (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    import socket

    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def last_line(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def wait_ready(
    url: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until ``/readyz`` answers 200; with ``process`` (started here), stop at once if it
    exits, and say every 15 s what it is doing (a first start trains a model)."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    said = started
    while time.monotonic() - started < timeout:
        if process is not None and process.poll() is not None:
            where = f"; its log ends: {last_line(log)}" if log is not None else ""
            raise SystemExit(f"the service exited with code {process.returncode}{where}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process is not None and log is not None and time.monotonic() - said >= 15:
            said = time.monotonic()
            waited = said - started
            print(f"  waiting for the service ({waited:.0f} s): {last_line(log)[:160]}", flush=True)
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--texts", type=Path, help="JSON Lines with a 'text' field")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TRIAGE_BENCH_API_KEY"),
        help="only needed when TRIAGE_SUGGEST_OPEN=false",
    )
    parser.add_argument("--start", action="store_true", help="start the service first")
    parser.add_argument("--workers", type=int, default=2, help="with --start")
    parser.add_argument(
        "--service-log",
        type=Path,
        default=REPO_ROOT / "var" / "load-service.log",
        help="with --start: where the service's log goes (default var/load-service.log)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    process = None
    if args.start:
        parts = urlsplit(args.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 8000
        if port_in_use(host, port):  # else the run would measure whatever listens there
            raise SystemExit(
                f"{host}:{port} is already in use: stop what listens there, or give --start "
                "another port with --url"
            )
        process = start_service(host, port, args.workers, args.service_log)
        print(f"started the service; its log: {args.service_log}", flush=True)
    try:
        # A first start trains a model.
        wait_ready(args.url, 600 if args.start else 5, process, args.service_log)
        texts = load_texts(args.texts)
        if args.warmup:
            # Warm-up also waits out workers still starting (readyz answers from the first).
            run_on_uvloop(run_load(args.url, args.warmup, args.concurrency, texts, args.api_key))
        service_cpu = group_cpu_seconds(process.pid) if process is not None else None
        client_cpu = time.process_time()
        latencies, errors, elapsed = run_on_uvloop(
            run_load(args.url, args.requests, args.concurrency, texts, args.api_key)
        )
        client_cpu = time.process_time() - client_cpu
        if service_cpu is not None and process is not None:
            after = group_cpu_seconds(process.pid)
            service_cpu = None if after is None else after - service_cpu
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    ordered = sorted(latencies)
    n_errors = sum(errors.values())
    result = {
        "url": args.url,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(args.requests / elapsed, 1),
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p95_ms": round(percentile(ordered, 95) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
        "errors": n_errors,
        "error_kinds": errors,
        # CPU per request: where the two cores went (the service's only with --start).
        "client_cpu_ms_per_request": round(client_cpu / args.requests * 1000, 3),
        "service_cpu_ms_per_request": (
            round(service_cpu / args.requests * 1000, 3) if service_cpu is not None else None
        ),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.requests} requests to {args.url}/v1/suggest, concurrency "
            f"{args.concurrency}, {elapsed:.1f} s"
        )
        print(
            f"  p50 {result['p50_ms']} ms   p95 {result['p95_ms']} ms   "
            f"p99 {result['p99_ms']} ms   max {result['max_ms']} ms"
        )
        print(f"  {result['requests_per_second']} requests/s   errors {n_errors} {errors or ''}")
        cpu = f"  CPU per request: load client {result['client_cpu_ms_per_request']} ms"
        if service_cpu is not None:
            cpu += (
                f", service {result['service_cpu_ms_per_request']} ms "
                f"({service_cpu / elapsed:.2f} of {os.cpu_count()} cores busy)"
            )
        print(cpu)
    return 1 if n_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
