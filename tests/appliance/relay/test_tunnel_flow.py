"""The tunnel's framing and per-stream flow control, Herald's side, with the plugin played by the test
as the wire protocol (docs/relay.md) says it behaves."""

from __future__ import annotations

import asyncio
import json

import pytest

from appliance.relay import framing
from appliance.relay.framing import DATA, MAX_FRAME, WS_TEXT, FrameError
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import PluginCommandFailed, StreamReset, Tunnel

WINDOW = framing.DEFAULT_WINDOW


class Wire:
    """What Herald sends to the plugin, in order."""

    def __init__(self) -> None:
        self.ops: list[dict] = []
        self.frames: list[tuple[int, int, bytes]] = []
        self.closed: tuple[int, str] | None = None
        self.changed = asyncio.Event()

    async def send_text(self, message: str) -> None:
        self.ops.append(json.loads(message))
        self.changed.set()

    async def send_bytes(self, message: bytes) -> None:
        stream_id, kind, payload = framing.decode_frame(message)
        self.frames.append((stream_id, kind, bytes(payload)))
        self.changed.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def of(self, op: str, stream: int | None = None) -> list[dict]:
        return [o for o in self.ops if o["op"] == op and (stream is None or o.get("stream") == stream)]

    def sent_to(self, stream: int) -> int:
        return sum(len(p) for s, _, p in self.frames if s == stream)


def tunnel_on(wire: Wire, peer_window: int = WINDOW) -> Tunnel:
    return Tunnel("printer-1", send_text=wire.send_text, send_bytes=wire.send_bytes, close=wire.close,
                  peer_window=peer_window)


def frame(stream: int, payload: bytes, kind: int = DATA) -> bytes:
    return framing.encode_frame(stream, kind, payload)


async def open_http(tunnel: Tunnel, url: str = "/api/job", body: bool = False, connection_id: str | None = None):
    stream = await tunnel.open_stream("http", method="POST" if body else "GET", url=url,
                                      headers=[("X-Api-Key", "k")], body=body, connection_id=connection_id)
    return stream


async def test_open_carries_the_request_and_the_head_comes_back():
    wire = Wire()
    tunnel = tunnel_on(wire)
    stream = await open_http(tunnel)
    opened = wire.of("open")[0]
    assert opened == {"op": "open", "stream": stream.id, "kind": "http", "method": "GET", "url": "/api/job",
                      "headers": [["X-Api-Key", "k"]], "body": False}
    await tunnel.handle(framing.encode_op("head", stream=stream.id, status=200, headers=[["Content-Type", "x/y"]]))
    head = await stream.head()
    assert head.status == 200 and head.headers == [("Content-Type", "x/y")]
    await tunnel.handle(frame(stream.id, b"hello"))
    await tunnel.handle(framing.encode_op("end", stream=stream.id))
    assert await stream.receive() == (DATA, b"hello")
    assert await stream.receive() is None
    assert stream.id not in tunnel.streams  # both sides ended: forgotten


async def test_a_slow_consumer_holds_back_only_its_own_stream():
    wire = Wire()
    tunnel = tunnel_on(wire)
    slow = await open_http(tunnel, "/webcam")
    fast = await open_http(tunnel, "/api/job")
    # the plugin fills the slow stream's whole window; nobody reads it
    for _ in range(WINDOW // MAX_FRAME):
        await tunnel.handle(frame(slow.id, b"s" * MAX_FRAME))
    assert slow.inbox_bytes == WINDOW
    # the fast stream keeps flowing: each drained quarter window comes back as credit
    total = 0
    for _ in range(3 * WINDOW // MAX_FRAME):
        await tunnel.handle(frame(fast.id, b"f" * MAX_FRAME))
        kind, payload = await fast.receive()
        await fast.consumed(len(payload))
        total += len(payload)
    assert total == 3 * WINDOW
    granted_fast = sum(o["bytes"] for o in wire.of("credit", fast.id))
    assert granted_fast == 3 * WINDOW  # it could go on for ever
    assert wire.of("credit", slow.id) == []  # the slow one got no credit: the plugin must wait
    # a plugin that ignores the window gets its stream reset, and memory stays bounded
    await tunnel.handle(frame(slow.id, b"s" * MAX_FRAME))
    await tunnel.handle(frame(slow.id, b"s" * MAX_FRAME))
    assert wire.of("reset", slow.id)[0]["error"] == "protocol_error"
    assert slow.inbox_bytes <= WINDOW + 2 * MAX_FRAME
    assert fast.reset_by is None


async def test_herald_sends_only_as_far_as_the_plugin_granted():
    wire = Wire()
    tunnel = tunnel_on(wire, peer_window=2 * MAX_FRAME)
    upload = await open_http(tunnel, "/api/files/local", body=True)
    other = await open_http(tunnel, "/api/files/local", body=True)
    sending = asyncio.create_task(upload.send_data(DATA, b"u" * (5 * MAX_FRAME)))
    while wire.sent_to(upload.id) < 2 * MAX_FRAME:
        wire.changed.clear()
        await wire.changed.wait()
    await asyncio.sleep(0)
    assert not sending.done() and wire.sent_to(upload.id) == 2 * MAX_FRAME  # waits for credit
    await other.send_data(DATA, b"o" * MAX_FRAME)  # another stream is not held up by it
    assert wire.sent_to(other.id) == MAX_FRAME
    await tunnel.handle(framing.encode_op("credit", stream=upload.id, bytes=3 * MAX_FRAME))
    await asyncio.wait_for(sending, 5)
    assert wire.sent_to(upload.id) == 5 * MAX_FRAME
    assert all(len(p) <= MAX_FRAME for _, _, p in wire.frames)


async def test_websocket_messages_keep_their_boundaries_and_have_a_size_limit():
    wire = Wire()
    tunnel = tunnel_on(wire)
    socket = await tunnel.open_stream("websocket", method="GET", url="/sockjs/websocket", headers=[], body=True)
    await socket.send_data(WS_TEXT, b'{"auth": "u:s"}')
    assert wire.frames[-1] == (socket.id, WS_TEXT, b'{"auth": "u:s"}')
    with pytest.raises(StreamReset):
        await socket.send_data(WS_TEXT, b"x" * (framing.MAX_MESSAGE + 1))
    assert wire.of("reset", socket.id)[0]["error"] == "too_large"


async def test_revoking_a_connection_cuts_its_streams_and_the_audit_hears_the_bytes():
    wire = Wire()
    registry = TunnelRegistry()
    tunnel = tunnel_on(wire)
    await registry.attach(tunnel)
    heard: list[tuple[str, int, int]] = []

    async def audit(connection_id, up, down):
        heard.append((connection_id, up, down))

    registry.stream_closed_listeners.append(audit)
    stream = await open_http(tunnel, "/webcam", connection_id="conn-1")
    registry.track(stream)
    untouched = await open_http(tunnel, "/api/job", connection_id="conn-2")
    registry.track(untouched)
    await tunnel.handle(framing.encode_op("head", stream=stream.id, status=200, headers=[]))
    await tunnel.handle(frame(stream.id, b"jpeg"))
    assert await stream.receive() == (DATA, b"jpeg")
    waiting = asyncio.create_task(stream.receive())
    await asyncio.sleep(0)
    assert await registry.cut_connections(["conn-1"]) == 1
    with pytest.raises(StreamReset) as cut:
        await waiting
    assert cut.value.error == "revoked"
    assert wire.of("reset", stream.id)[0]["error"] == "revoked"
    assert untouched.reset_by is None
    await registry.stream_closed(stream)
    assert heard == [("conn-1", 0, 4)]


async def test_a_newer_tunnel_replaces_the_old_and_unlinking_closes_it():
    registry = TunnelRegistry()
    first_wire, second_wire = Wire(), Wire()
    first, second = tunnel_on(first_wire), tunnel_on(second_wire)
    await registry.attach(first)
    stream = await open_http(first)
    await registry.attach(second)
    assert first_wire.closed[0] == framing.CLOSE_REPLACED
    assert isinstance(stream.reset_by, StreamReset)
    assert registry.tunnel_for("printer-1") is second and registry.relay_connected("printer-1")
    await registry.close_printers(["printer-1"], "unlinked")
    assert second_wire.closed[0] == framing.CLOSE_UNAUTHORISED
    assert not registry.relay_connected("printer-1")
    with pytest.raises(StreamReset):
        await open_http(second)


async def test_plugin_side_commands_answer_or_fail_clearly():
    wire = Wire()
    tunnel = tunnel_on(wire)
    call = asyncio.create_task(tunnel.call("mint_api_key", {"app": "OctoPod"}))
    while not wire.of("request"):
        wire.changed.clear()
        await wire.changed.wait()
    request = wire.of("request")[0]
    assert request["command"] == "mint_api_key" and request["args"] == {"app": "OctoPod"}
    await tunnel.handle(framing.encode_op("response", id=request["id"], result={"key": "ABC"}))
    assert await call == {"key": "ABC"}
    refused = asyncio.create_task(tunnel.call("revoke_api_key", {"key": "ABC"}))
    while len(wire.of("request")) < 2:
        wire.changed.clear()
        await wire.changed.wait()
    await tunnel.handle(framing.encode_op("response", id=wire.of("request")[1]["id"],
                                          error={"code": "not_allowed", "message": "the owner did not allow it"}))
    with pytest.raises(PluginCommandFailed, match="did not allow"):
        await refused
    with pytest.raises(PluginCommandFailed) as timed_out:
        await tunnel.call("mint_api_key", {"app": "x"}, timeout=0.01)
    assert timed_out.value.code == "timeout"


async def test_broken_frames_and_ops_are_protocol_errors_and_unknown_ops_are_ignored():
    tunnel = tunnel_on(Wire())
    with pytest.raises(FrameError):
        await tunnel.handle(b"\x00\x00")
    with pytest.raises(FrameError):
        await tunnel.handle(framing.encode_frame(1, 9, b""))
    with pytest.raises(FrameError):
        await tunnel.handle("not json")
    with pytest.raises(FrameError):
        await tunnel.handle(framing.encode_op("credit", stream="1", bytes=5))
    await tunnel.handle(framing.encode_op("something_new", stream=1))
    await tunnel.handle(frame(77, b"late"))  # a stream it does not know: dropped
    assert framing.pick_version([1, 2]) == 1 and framing.pick_version([2]) is None
