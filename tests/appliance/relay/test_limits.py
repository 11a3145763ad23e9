"""The relay's limits per connection, in process: the test plays the plugin on the tunnel and an app
on the connection's own host (apps/relay_limits.py, relay/pacing.py)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from appliance.relay import framing
from appliance.relay.pacing import Pace
from tests.appliance.apps.test_portal_and_api import _connect
from tests.support.printers import bearer, make_printer
from tests.support.users import login, make_user

HELLO = framing.encode_op("hello", versions=[1], plugin_version="test", window=framing.DEFAULT_WINDOW)


async def _app_and_tunnel(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await client.put("/api/v1/printer/status", headers=bearer(key), json={"state": "Operational",
                                                                         "state_id": "operational"})
    await login(client)
    fields = await _connect(client, herald, printer.id)
    host = fields["url"].split("://", 1)[1].rstrip("/")
    basic = base64.b64encode(f"{fields['authBasicHttpUser']}:{fields['authBasicHttpPassword']}".encode()).decode()
    return key, {"Host": host, "Authorization": f"Basic {basic}"}


async def _next_op(ws) -> dict:
    while True:
        message = await ws.receive()
        if isinstance(message, str):
            op = json.loads(message)
            if op["op"] != "ping":
                return op


async def _answer(ws, stream: int, body: bytes = b"ok") -> None:
    await ws.send(framing.encode_op("head", stream=stream, status=200, headers=[["Content-Type", "text/plain"]]))
    await ws.send(framing.encode_frame(stream, framing.DATA, body))
    await ws.send(framing.encode_op("end", stream=stream))


async def test_one_stream_too_many_is_refused_while_the_others_go_on(app, client, herald):
    herald.settings = herald.settings.replace(relay_max_streams=1)
    key, app_headers = await _app_and_tunnel(client, herald)
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()
        first = asyncio.create_task(client.get("/api/job", headers=app_headers))
        opened = await _next_op(ws)  # the first request is open on the tunnel, not answered yet
        assert opened["op"] == "open" and opened["url"] == "/api/job"
        second = await client.get("/api/printer", headers=app_headers)
        assert second.status_code == 429
        assert "1 streams open" in json.loads(await second.get_data())["Error"]
        await _answer(ws, opened["stream"], b"job")
        answered = await first
        assert answered.status_code == 200 and await answered.get_data() == b"job"
        # once it is done, the connection may open a stream again
        third = asyncio.create_task(client.get("/api/printer", headers=app_headers))
        opened = await _next_op(ws)
        assert opened["url"] == "/api/printer"
        await _answer(ws, opened["stream"])
        assert (await third).status_code == 200


async def test_a_body_over_the_limit_is_refused_before_it_reaches_the_printer(app, client, herald):
    herald.settings = herald.settings.replace(relay_max_body=1000)
    key, app_headers = await _app_and_tunnel(client, herald)
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()
        refused = await client.post("/api/files/local", data=b"G1 X1\n" * 200,
                                    headers={**app_headers, "Content-Length": "1200"})
        assert refused.status_code == 413, await refused.get_data()
        assert "1000 bytes" in json.loads(await refused.get_data())["Error"]
        fits = asyncio.create_task(client.post("/api/files/local", data=b"G28\n",
                                               headers={**app_headers, "Content-Length": "4"}))
        opened = await _next_op(ws)  # the first thing the plugin hears of is the upload that fits
        assert opened["op"] == "open" and opened["method"] == "POST"
        while (await _next_op(ws))["op"] != "end":
            pass
        await _answer(ws, opened["stream"])
        assert (await fits).status_code == 200
        # a body of no announced length is cut where it passes the limit
        chunked = asyncio.create_task(client.post("/api/files/local", data=b"G1 X1\n" * 200,
                                                  headers={**app_headers, "Transfer-Encoding": "chunked"}))
        opened = await _next_op(ws)
        assert opened["op"] == "open" and opened["body"] is True
        reset = await _next_op(ws)
        assert reset["op"] == "reset" and reset["stream"] == opened["stream"] and reset["error"] == "too_large"
        response = await chunked
        assert response.status_code == 413, await response.get_data()


async def test_a_stream_that_moves_nothing_is_reset_after_the_idle_timeout(app, client, herald):
    herald.settings = herald.settings.replace(relay_idle_seconds=1)
    key, app_headers = await _app_and_tunnel(client, herald)
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()
        waiting = asyncio.create_task(client.get("/webcam/stream", headers=app_headers))
        opened = await _next_op(ws)
        stream = opened["stream"]
        await ws.send(framing.encode_op("head", stream=stream, status=200, headers=[["Content-Type", "text/plain"]]))
        await ws.send(framing.encode_frame(stream, framing.DATA, b"first"))
        reset = await asyncio.wait_for(_next_op(ws), 60)  # then nothing moves: Herald resets it
        assert reset == {"op": "reset", "stream": stream, "error": "idle", "message": reset["message"]}
        response = await waiting
        assert response.status_code == 200 and (await response.get_data()).startswith(b"first")


async def test_the_bandwidth_bucket_makes_a_burst_wait_for_its_rate():
    """The bucket's own clock: the waits it asks for, not how long the machine took."""
    clock = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    pace = Pace(100_000, now=lambda: clock[0], sleep=sleep)  # bytes per second; starts full with 64 KiB
    for _ in range(10):
        await pace.take(30_000)
    # 300,000 bytes at 100,000 a second, less the first 64 KiB, is what it makes the sender wait
    assert sum(waits) == pytest.approx((300_000 - 65_536) / 100_000)
    assert len(waits) == 8  # the first two takes fit the full bucket and wait for nothing
    clock[0] += 10  # a quiet spell refills the bucket only to its burst, never beyond
    waits.clear()
    await pace.take(65_536)
    assert waits == []
    await pace.take(1)
    assert waits and waits[0] == pytest.approx(1 / 100_000)
    unlimited = Pace(0, now=lambda: clock[0], sleep=sleep)
    waits.clear()
    await unlimited.take(10**9)  # no cap: nothing to wait for
    assert waits == []
