"""Slow request bodies cannot hold connections: a deadline per body, a cap per client address."""

from __future__ import annotations

import asyncio
import socket

from appliance.core.slowbodies import SlowBodyGuard
from tests.conftest import free_port
from tests.support.server import LiveServer

BODY = b'{"printer_name": "' + b"x" * 40 + b'"}'


def _trickle_until_closed(url_port: int, *, every: float) -> tuple[bytes, int]:
    """POST a body one byte at a time; returns what the server answered and how many bytes were sent."""
    with socket.create_connection(("127.0.0.1", url_port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/link HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n")
        sock.settimeout(every)
        answer = b""
        sent = 0
        for byte in BODY:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
            sock.settimeout(5)
            while chunk:  # read the rest of the answer until the server closes
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, OSError):
                    break
                answer += chunk
            break
        return answer, sent


def test_a_trickled_body_is_cut_off_and_its_connection_closed(tmp_path):
    server = LiveServer(data_dir=tmp_path / "data", port=free_port(),
                        env={"HERALD_REQUEST_BODY_SECONDS": "2"}).start()
    try:
        answer, sent = _trickle_until_closed(server.port, every=0.5)
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 2 seconds" in answer
    assert sent < len(BODY)  # closed while the client still had most of its body to send


async def test_one_client_may_leave_only_so_many_bodies_unfinished():
    """The sixth unfinished body from one address is refused at once; another address is not."""
    arrived: list[str] = []
    release = asyncio.Event()

    async def app(scope, receive, send):
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        arrived.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = SlowBodyGuard(app, seconds=3600, per_client=5)

    def request(address: str):
        return {"type": "http", "method": "POST", "client": (address, 1234), "http_version": "1.1",
                "headers": [(b"content-length", b"10")]}

    reading = 0
    reached = {5: asyncio.Event(), 6: asyncio.Event()}  # how many apps are reading a body

    async def never_finishing():
        nonlocal reading
        reading += 1
        if reading in reached:
            reached[reading].set()
        await release.wait()
        return {"type": "http.request", "body": b"0123456789", "more_body": False}

    answers: list[list[dict]] = []

    def sender():
        sent: list[dict] = []
        answers.append(sent)

        async def send(message):
            sent.append(message)
        return send

    slow = [asyncio.create_task(guard(request("203.0.113.5"), never_finishing, sender())) for _ in range(5)]
    await reached[5].wait()  # each request is counted before the app reads its body
    assert sum(guard.open_bodies.values()) == 5
    await guard(request("203.0.113.5"), never_finishing, sender())
    assert answers[-1][0]["status"] == 429
    other = asyncio.create_task(guard(request("198.51.100.7"), never_finishing, sender()))
    await reached[6].wait()
    assert guard.open_bodies["198.51.100.7"] == 1
    release.set()
    await asyncio.gather(*slow, other)
    assert sorted(arrived) == ["198.51.100.7"] + ["203.0.113.5"] * 5
    assert guard.open_bodies == {}  # nothing left counted


async def test_a_body_past_its_deadline_is_answered_408():
    async def app(scope, receive, send):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = SlowBodyGuard(app, seconds=0.01, per_client=5)
    sent: list[dict] = []

    async def receive():
        await asyncio.Event().wait()  # a body that never comes

    async def send(message):
        sent.append(message)

    await guard({"type": "http", "method": "POST", "client": ("127.0.0.1", 1), "http_version": "1.1",
                 "headers": [(b"content-length", b"10")]}, receive, send)
    assert sent[0]["status"] == 408
    assert guard.open_bodies == {}
