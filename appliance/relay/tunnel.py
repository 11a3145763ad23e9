"""One plugin's tunnel: its streams, their credit, and the control ops (docs/relay.md).

A ``Tunnel`` is fed every message the plugin sends (``handle``) by the tunnel route's read
loop, and never blocks it: data for a stream goes into that stream's inbox, which the
plugin may fill only as far as the credit Herald granted. Whoever consumes a stream (the
forwarding of one app request) grants more credit as it drains, so a slow consumer holds
back its own stream and no other.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.relay import framing
from appliance.relay.framing import DATA, MAX_FRAME, MAX_MESSAGE, FrameError

log = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]
SendBytes = Callable[[bytes], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]

COMMAND_TIMEOUT = 30.0  # seconds Herald waits for a plugin-side command's answer


class StreamReset(Exception):
    """The stream was reset (by the plugin, by Herald, or because the tunnel closed)."""

    def __init__(self, error: str, message: str = "") -> None:
        super().__init__(message or error)
        self.error = error
        self.message = message or error


class PluginCommandFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Head:
    status: int
    headers: list[tuple[str, str]]


@dataclass(eq=False)
class Stream:
    """One HTTP exchange or one WebSocket over a tunnel, as Herald sees it."""

    id: int
    tunnel: Tunnel
    kind: str
    connection_id: str | None = None
    send_credit: int = 0  # payload bytes Herald may still send
    bytes_up: int = 0  # payload bytes from the app to OctoPrint
    bytes_down: int = 0  # payload bytes from OctoPrint to the app
    inbox: collections.deque[tuple[int, bytes] | None] = field(default_factory=collections.deque)
    inbox_bytes: int = 0
    unacknowledged: int = 0  # consumed payload not yet granted back as credit
    reset_by: StreamReset | None = None
    local_ended: bool = False
    remote_ended: bool = False
    head_future: asyncio.Future[Head] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    end_fields: dict[str, Any] = field(default_factory=dict)
    _readable: asyncio.Event = field(default_factory=asyncio.Event)
    _writable: asyncio.Event = field(default_factory=asyncio.Event)

    # --- Herald -> plugin

    async def send_data(self, kind: int, payload: bytes) -> None:
        """Send body bytes (cut into frames) or one WebSocket message, within the plugin's credit."""
        if kind != DATA and len(payload) > MAX_MESSAGE:
            await self.reset("too_large", f"a WebSocket message over {MAX_MESSAGE} bytes")
            raise StreamReset("too_large")
        view = memoryview(payload)
        step = MAX_FRAME if kind == DATA else max(len(payload), 1)
        for start in range(0, max(len(view), 1), step):
            chunk = bytes(view[start:start + step])
            while self.send_credit <= 0 and self.reset_by is None:
                self._writable.clear()
                await self._writable.wait()
            if self.reset_by is not None:
                raise self.reset_by
            self.send_credit -= len(chunk)
            self.bytes_up += len(chunk)
            await self.tunnel.send_bytes(framing.encode_frame(self.id, kind, chunk))

    async def send_end(self, **fields: Any) -> None:
        if self.local_ended or self.reset_by is not None:
            return
        self.local_ended = True
        await self.tunnel.send_op("end", stream=self.id, **fields)
        self.tunnel.forget_if_done(self)

    async def reset(self, error: str, message: str = "") -> None:
        """Abort the stream on both sides (idempotent)."""
        if self.reset_by is not None:
            return
        self._fail(StreamReset(error, message))
        self.tunnel.forget(self)
        await self.tunnel.send_op("reset", stream=self.id, error=error, message=message or error)

    # --- plugin -> Herald

    async def head(self) -> Head:
        return await self.head_future

    async def receive(self) -> tuple[int, bytes] | None:
        """The next data frame (type, payload), or None at the plugin's ``end``; raises StreamReset."""
        while not self.inbox:
            if self.reset_by is not None:
                raise self.reset_by
            self._readable.clear()
            await self._readable.wait()
        item = self.inbox.popleft()
        if item is not None:
            self.inbox_bytes -= len(item[1])
        return item

    async def consumed(self, count: int) -> None:
        """The consumer drained ``count`` payload bytes: grant them back in batches."""
        self.unacknowledged += count
        if self.unacknowledged >= self.tunnel.own_window // framing.CREDIT_BATCH_DIVISOR and self.reset_by is None:
            grant, self.unacknowledged = self.unacknowledged, 0
            await self.tunnel.send_op("credit", stream=self.id, bytes=grant)

    # --- fed by the tunnel

    def _deliver(self, kind: int, payload: bytes) -> bool:
        """False when the plugin sent more than it was granted."""
        self.inbox_bytes += len(payload)
        self.bytes_down += len(payload)
        if self.inbox_bytes > self.tunnel.own_window + max(MAX_FRAME, MAX_MESSAGE if kind != DATA else 0):
            return False
        self.inbox.append((kind, payload))
        self._readable.set()
        return True

    def _remote_end(self, fields: dict[str, Any]) -> None:
        self.end_fields = fields
        self.remote_ended = True
        self.inbox.append(None)
        self._readable.set()

    def _grant(self, count: int) -> None:
        self.send_credit += count
        self._writable.set()

    def _fail(self, error: StreamReset) -> None:
        if self.reset_by is None:
            self.reset_by = error
        if not self.head_future.done():
            self.head_future.set_exception(error)
            self.head_future.exception()  # retrieved here: nobody may be waiting for the head
        self._readable.set()
        self._writable.set()


class Tunnel:
    """One live plugin connection (the plugin's printer), seen from Herald."""

    def __init__(self, printer_id: str, *, send_text: SendText, send_bytes: SendBytes, close: Close,
                 peer_window: int, own_window: int = framing.DEFAULT_WINDOW, key_digest: str = "") -> None:
        self.printer_id = printer_id
        self.key_digest = key_digest  # the hpk_ key it opened with, as SHA-256: a new key ends it
        self.peer_window = peer_window  # credit each new stream starts with, towards the plugin
        self.own_window = own_window  # what Herald announced: the plugin's credit per stream
        self.streams: dict[int, Stream] = {}
        self.closed = asyncio.Event()
        self.on_stream_gone: Callable[[Stream], None] = lambda stream: None
        self._send_text = send_text
        self._send_bytes = send_bytes
        self._close = close
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._commands: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._command_ids = itertools.count(1)
        self.last_heard = asyncio.get_running_loop().time()

    # --- sending (one message at a time on the socket)

    async def send_op(self, op: str, **fields: Any) -> None:
        if self.closed.is_set():
            return
        async with self._send_lock:
            await self._send_text(framing.encode_op(op, **fields))

    async def send_bytes(self, frame: bytes) -> None:
        if self.closed.is_set():
            raise StreamReset("tunnel_closing", "the printer's tunnel closed")
        async with self._send_lock:
            await self._send_bytes(frame)

    # --- streams

    async def open_stream(self, kind: str, *, method: str, url: str, headers: list[tuple[str, str]],
                          body: bool, connection_id: str | None = None, **extra: Any) -> Stream:
        if self.closed.is_set():
            raise StreamReset("tunnel_closing", "the printer's tunnel closed")
        stream = Stream(id=next(self._ids), tunnel=self, kind=kind, connection_id=connection_id,
                        send_credit=self.peer_window)
        stream.local_ended = not body
        self.streams[stream.id] = stream
        await self.send_op("open", stream=stream.id, kind=kind, method=method, url=url,
                           headers=[list(pair) for pair in headers], body=body, **extra)
        return stream

    def forget(self, stream: Stream) -> None:
        if self.streams.pop(stream.id, None) is not None:
            self.on_stream_gone(stream)

    def forget_if_done(self, stream: Stream) -> None:
        if stream.local_ended and stream.remote_ended:
            self.forget(stream)

    # --- plugin-side commands

    async def call(self, command: str, args: dict[str, Any], timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """Run a plugin-side command (``mint_api_key``, ``revoke_api_key``) and return its result."""
        command_id = next(self._command_ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._commands[command_id] = answer
        try:
            await self.send_op("request", id=command_id, command=command, args=args)
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise PluginCommandFailed("timeout", f"the plugin did not answer {command} within {timeout:g} s") from None
        finally:
            self._commands.pop(command_id, None)

    # --- receiving

    async def handle(self, message: str | bytes) -> None:
        """One message from the plugin. Raises FrameError when the plugin breaks the protocol."""
        self.last_heard = asyncio.get_running_loop().time()
        if isinstance(message, bytes | bytearray):
            stream_id, kind, payload = framing.decode_frame(bytes(message))
            stream = self.streams.get(stream_id)
            if stream is None or stream.reset_by is not None:
                return  # a frame for a stream just reset or finished
            if not stream._deliver(kind, bytes(payload)):
                await stream.reset("protocol_error", "the plugin sent more than its credit")
            return
        op = framing.decode_op(message)
        name = op["op"]
        if name == "ping":
            await self.send_op("pong", id=op.get("id"))
        elif name in ("pong", "hello"):
            pass
        elif name == "credit":
            stream = self.streams.get(_int(op, "stream"))
            if stream is not None:
                stream._grant(max(0, _int(op, "bytes")))
        elif name == "head":
            stream = self.streams.get(_int(op, "stream"))
            if stream is not None and not stream.head_future.done():
                headers = [(str(k), str(v)) for k, v in op.get("headers") or []]
                stream.head_future.set_result(Head(status=_int(op, "status"), headers=headers))
        elif name == "end":
            stream = self.streams.get(_int(op, "stream"))
            if stream is not None:
                stream._remote_end({k: v for k, v in op.items() if k in ("code", "reason")})
                self.forget_if_done(stream)
        elif name == "reset":
            stream = self.streams.get(_int(op, "stream"))
            if stream is not None:
                stream._fail(StreamReset(str(op.get("error") or "reset"), str(op.get("message") or "")))
                self.forget(stream)
        elif name == "response":
            answer = self._commands.get(_int(op, "id"))
            if answer is not None and not answer.done():
                error = op.get("error")
                if error:
                    error = error if isinstance(error, dict) else {"message": str(error)}
                    answer.set_exception(PluginCommandFailed(str(error.get("code") or "failed"),
                                                             str(error.get("message") or "the plugin refused")))
                else:
                    result = op.get("result")
                    answer.set_result(result if isinstance(result, dict) else {})
        elif name == "error":
            log.warning("printer %s's plugin reports: %s", self.printer_id, op.get("message"))
        # unknown ops are ignored: a newer plugin may send them

    # --- the end

    def fail_all(self, error: str, message: str) -> None:
        """Every stream ends with a reset (no message to the plugin: it is gone or going)."""
        for stream in list(self.streams.values()):
            stream._fail(StreamReset(error, message))
            self.forget(stream)
        for answer in self._commands.values():
            if not answer.done():
                answer.set_exception(PluginCommandFailed("tunnel_closing", message))

    async def close(self, code: int, reason: str) -> None:
        """End the tunnel: its streams are cut at once, then the WebSocket closes."""
        if self.closed.is_set():
            return
        self.fail_all("tunnel_closing", reason)
        self.closed.set()
        try:
            await self._close(code, reason)
        except Exception:  # the socket may already be gone
            log.debug("closing printer %s's tunnel", self.printer_id, exc_info=True)


def _int(op: dict[str, Any], name: str) -> int:
    value = op.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameError(f"{op.get('op')}: {name} must be an integer")
    return value
