"""``benchmarks/load.py``: the load client sends what it should and counts what comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks import load

OK = b'{"model_version": "v1"}'
RUNNERS: list[Callable[[Any], Any]] = [asyncio.run, load.run_on_uvloop]


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers by the request's text: ``ok``, ``chunked``, ``fail`` (500), ``close`` (hangs
    up), ``hang`` (never answers)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        text = json.loads(await reader.readexactly(length))["text"]
        if text == "ok":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK), OK))
        elif text == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (OK[:5], OK[5:]))
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await writer.drain()
            writer.write(chunks + b"0\r\n\r\n")
        elif text == "fail":
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")
        elif text == "close":
            writer.close()
            return
        await writer.drain()


async def _load(texts: list[str], n: int, concurrency: int) -> tuple[int, dict[str, int]]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        latencies, errors, _ = await load.run_load(
            f"http://127.0.0.1:{port}", n, concurrency, texts
        )
    return len(latencies), errors


@pytest.mark.parametrize("runner", RUNNERS)
def test_answers_are_parsed_and_checked_and_hang_ups_counted(runner: Callable[[Any], Any]) -> None:
    timed, errors = runner(_load(["ok", "chunked", "fail", "close"], 400, 3))
    assert timed == 300  # every answer, also the 500s
    assert errors == {"HTTP 500": 100, "ConnectionError": 100}


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_request_without_answer_times_out(
    runner: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "TIMEOUT", 0.2)
    assert runner(_load(["ok", "hang"], 4, 1)) == (2, {"TimeoutError": 2})


def test_a_refused_connection_is_an_error_per_request() -> None:
    async def refused() -> dict[str, int]:
        server = await asyncio.start_server(_serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return (await load.run_load(f"http://127.0.0.1:{port}", 5, 2, ["ok"]))[1]

    assert load.run_on_uvloop(refused()) == {"ConnectionRefusedError": 5}


def test_the_request_is_a_complete_http_post() -> None:
    seen: list[bytes] = []
    body = '{"text": "Grüße"}'.encode()

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n") + await reader.readexactly(len(body)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK), OK))
        await writer.drain()

    async def one() -> dict[str, int]:
        server = await asyncio.start_server(capture, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            url = f"http://127.0.0.1:{port}"
            return (await load.run_load(url, 1, 1, ["Grüße"], api_key="k"))[1]

    assert load.run_on_uvloop(one()) == {}
    port = seen[0].split(b"Host: 127.0.0.1:")[1].split(b"\r\n")[0]
    assert seen[0] == (
        b"POST /v1/suggest HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 19\r\nX-API-Key: k\r\n\r\n" + body
    )
