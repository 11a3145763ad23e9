"""The relay tunnel, plugin side: one outbound WebSocket to Herald, streams to OctoPrint (docs/relay.md).

Runs in a daemon thread of its own with its own Tornado IOLoop: nothing here runs on, or
blocks, OctoPrint's threads, and nothing raises into OctoPrint. It only ever connects to
OctoPrint's own server and to the webcam URLs configured in OctoPrint; a stream naming any
other address is reset before a connection is made.

Only Tornado (which OctoPrint itself runs on) is used: ``websocket_connect`` for the tunnel
and for OctoPrint's ``/sockjs/websocket``, ``HTTP1Connection`` for HTTP, because it awaits a
body consumer (so a slow app holds back only its own stream).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from tornado import httpclient, httputil, websocket
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

from .version import __version__

# --- the wire format: the same few constants and functions as appliance/relay/framing.py ----
PROTOCOL_VERSIONS = [1]
WINDOW = 1024 * 1024  # the credit Herald gets per stream, towards us
MAX_FRAME = 256 * 1024
MAX_MESSAGE = 1024 * 1024
CREDIT_BATCH = WINDOW // 4
DATA, WS_TEXT, WS_BINARY = 0, 1, 2
_HEADER = struct.Struct(">IB")
CLOSE_UNAUTHORISED = 4401
CLOSE_REPLACED = 4409

PING_EVERY = 10.0  # keeps Herald's idle read timeout (30 s by default) from closing the tunnel
SILENCE_LIMIT = 60.0  # nothing from Herald this long: reconnect
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 120.0
BACKOFF_REVOKED = 600.0  # the key was refused: try again rarely (a relink reconfigures at once)
CONNECT_TIMEOUT = 15.0
COMMAND_THREADS = 2

WEBCAM_STREAM_PATH = "/_herald/webcam/stream"
WEBCAM_SNAPSHOT_PATH = "/_herald/webcam/snapshot"
_DROPPED_REQUEST_HEADERS = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                                      "expect", "proxy-connection"})
_DROPPED_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                                       "proxy-connection"})


def encode_frame(stream_id, kind, payload):
    return _HEADER.pack(stream_id, kind) + payload


def encode_op(op, **fields):
    return json.dumps({"op": op, **fields}, separators=(",", ":"))


class TargetNotAllowed(Exception):
    """A stream named an address the plugin does not relay to."""


@dataclass(frozen=True)
class TunnelConfig:
    """Everything one tunnel session needs; a change makes the tunnel reconnect."""

    herald_url: str
    printer_key: str
    verify: Any = True  # True, False or a CA bundle path
    octoprint_host: str = "127.0.0.1"
    octoprint_port: int = 5000
    webcam_stream: str = ""
    webcam_snapshot: str = ""

    @property
    def tunnel_url(self):
        base = self.herald_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base[len("https://"):] + "/api/v1/printer/tunnel"
        return "ws://" + base[len("http://"):] + "/api/v1/printer/tunnel"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query


def _origin_of(url):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80), parts.path or "/"


def resolve_target(config, url):
    """Where a stream's ``url`` goes: OctoPrint's own server, or a configured webcam URL. Else refused."""
    own = Target("http", config.octoprint_host, config.octoprint_port, "/")
    webcams = {}
    for name, configured in (("stream", config.webcam_stream), ("snapshot", config.webcam_snapshot)):
        configured = (configured or "").strip()
        if not configured:
            continue
        if configured.startswith("/") and not configured.startswith("//"):
            webcams[name] = Target(own.scheme, own.host, own.port, configured)
        else:
            origin = _origin_of(configured)
            if origin:
                path = configured.split(origin[1], 1)[-1]
                path = path[path.index("/"):] if "/" in path else "/"
                webcams[name] = Target(origin[0], origin[1], origin[2], path)
    if not isinstance(url, str) or not url:
        raise TargetNotAllowed("a stream without a url")
    if url.startswith("/") and not url.startswith("//") and "\\" not in url and not any(c in url for c in "\r\n\t "):
        path, _, query = url.partition("?")
        for name, reserved in (("stream", WEBCAM_STREAM_PATH), ("snapshot", WEBCAM_SNAPSHOT_PATH)):
            if path == reserved:
                if name not in webcams:
                    raise TargetNotAllowed(f"no webcam {name} URL is configured in OctoPrint")
                target = webcams[name]
                if query:
                    joiner = "&" if "?" in target.path else "?"
                    target = Target(target.scheme, target.host, target.port, target.path + joiner + query)
                return target
        return Target(own.scheme, own.host, own.port, url)
    origin = _origin_of(url)
    if origin is not None:
        for target in webcams.values():
            if (target.scheme, target.host, target.port) == origin[:3] and target.path.split("?")[0] == origin[3]:
                query = urlsplit(url).query
                return Target(target.scheme, target.host, target.port, origin[3] + ("?" + query if query else ""))
    raise TargetNotAllowed(f"the Herald plugin relays only to OctoPrint and its configured webcam, not to {url[:200]}")


class _Reset(Exception):
    def __init__(self, error, message=""):
        super().__init__(message or error)
        self.error = error
        self.message = message or error


@dataclass(eq=False)
class _Stream:
    id: int
    session: _Session
    send_credit: int
    inbox: collections.deque = field(default_factory=collections.deque)
    readable: asyncio.Event = field(default_factory=asyncio.Event)
    writable: asyncio.Event = field(default_factory=asyncio.Event)
    reset_by: _Reset | None = None
    unacknowledged: int = 0
    inbox_bytes: int = 0
    ended: bool = False
    closers: list = field(default_factory=list)  # called when the stream is reset (close upstream)

    async def send_data(self, kind, payload):
        step = self.session.max_frame if kind == DATA else max(len(payload), 1)
        for start in range(0, max(len(payload), 1), step):
            chunk = payload[start:start + step]
            while self.send_credit <= 0 and self.reset_by is None:
                self.writable.clear()
                await self.writable.wait()
            if self.reset_by is not None:
                raise self.reset_by
            self.send_credit -= len(chunk)
            await self.session.write(encode_frame(self.id, kind, bytes(chunk)), binary=True)

    async def wait_credit(self):
        while self.send_credit <= 0 and self.reset_by is None:
            self.writable.clear()
            await self.writable.wait()
        if self.reset_by is not None:
            raise self.reset_by

    async def next_item(self):
        while not self.inbox:
            if self.reset_by is not None:
                raise self.reset_by
            self.readable.clear()
            await self.readable.wait()
        item = self.inbox.popleft()
        if item is not None:
            self.inbox_bytes -= len(item[1])
        return item

    async def consumed(self, count):
        self.unacknowledged += count
        if self.unacknowledged >= CREDIT_BATCH and self.reset_by is None:
            grant, self.unacknowledged = self.unacknowledged, 0
            await self.session.op("credit", stream=self.id, bytes=grant)

    async def head(self, status, headers):
        await self.session.op("head", stream=self.id, status=status, headers=[list(h) for h in headers])

    async def end(self, **fields):
        if not self.ended and self.reset_by is None:
            self.ended = True
            await self.session.op("end", stream=self.id, **fields)

    async def reset(self, error, message=""):
        if self.reset_by is None:
            self.fail(_Reset(error, message))
            await self.session.op("reset", stream=self.id, error=error, message=message or error)
        self.session.streams.pop(self.id, None)

    def fail(self, error):
        if self.reset_by is None:
            self.reset_by = error
        self.readable.set()
        self.writable.set()
        for close in self.closers:
            try:
                close()
            except Exception:
                pass


class _ResponseRelay(httputil.HTTPMessageDelegate):
    """OctoPrint's (or the webcam's) response, fed into a stream as credit allows."""

    def __init__(self, stream, connection):
        self.stream = stream
        self.connection = connection
        self.head_sent = False

    async def headers_received(self, start_line, headers):
        if self.stream.reset_by is not None:
            self.connection.close()
            return
        kept = [(k, v) for k, v in headers.get_all() if k.lower() not in _DROPPED_RESPONSE_HEADERS]
        await self.stream.head(start_line.code, kept)
        self.head_sent = True

    async def data_received(self, chunk):
        try:
            await self.stream.send_data(DATA, chunk)
        except (_Reset, StreamClosedError, websocket.WebSocketClosedError):
            self.connection.close()

    def finish(self):
        pass

    def on_connection_close(self):
        pass


class _Session:
    """One connected tunnel: reads Herald's messages, runs the streams."""

    def __init__(self, tunnel, connection, config, herald_window, herald_max_frame=MAX_FRAME):
        self.tunnel = tunnel
        self.connection = connection
        self.config = config
        self.herald_window = herald_window
        # frames no larger than either side allows (a Herald before 0.2 said 65536)
        self.max_frame = max(1024, min(MAX_FRAME, herald_max_frame))
        self.streams = {}
        self.tasks = set()
        self.last_heard = time.monotonic()

    async def write(self, message, binary=False):
        await self.connection.write_message(message, binary=binary)

    async def op(self, name, **fields):
        try:
            await self.write(encode_op(name, **fields))
        except (StreamClosedError, websocket.WebSocketClosedError):
            pass

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self):
        pinger = asyncio.ensure_future(self._keep_alive())
        try:
            while True:
                message = await self.connection.read_message()
                if message is None:
                    return
                self.last_heard = time.monotonic()
                if isinstance(message, bytes):
                    self._data(message)
                else:
                    await self._control(json.loads(message))
        finally:
            pinger.cancel()
            for stream in list(self.streams.values()):
                stream.fail(_Reset("tunnel_closing", "the tunnel closed"))
            self.streams.clear()
            for task in list(self.tasks):
                task.cancel()

    async def _keep_alive(self):
        count = 0
        while True:
            await asyncio.sleep(PING_EVERY)
            if time.monotonic() - self.last_heard > SILENCE_LIMIT:
                self.connection.close(1011, "Herald stopped answering")
                return
            count += 1
            await self.op("ping", id=count)

    def _data(self, message):
        if len(message) < _HEADER.size:
            return
        stream_id, kind = _HEADER.unpack_from(message)
        stream = self.streams.get(stream_id)
        if stream is None or stream.reset_by is not None:
            return
        payload = message[_HEADER.size:]
        stream.inbox_bytes += len(payload)
        if stream.inbox_bytes > WINDOW + MAX_MESSAGE:
            self.spawn(stream.reset("protocol_error", "Herald sent more than its credit"))
            return
        stream.inbox.append((kind, payload))
        stream.readable.set()

    async def _control(self, op):
        name = op.get("op")
        stream = self.streams.get(op.get("stream"))
        if name == "open":
            stream_id = op.get("stream")
            if not isinstance(stream_id, int) or stream_id in self.streams:
                return
            stream = _Stream(stream_id, self, self.herald_window)
            if op.get("body") is False:
                stream.inbox.append(None)
            self.streams[stream_id] = stream
            runner = self._websocket if op.get("kind") == "websocket" else self._http
            self.spawn(self._guarded(stream, runner(stream, op)))
        elif name == "credit" and stream is not None:
            bytes_ = op.get("bytes")
            if isinstance(bytes_, int) and bytes_ > 0:
                stream.send_credit += bytes_
                stream.writable.set()
        elif name == "end" and stream is not None:
            stream.inbox.append(None)
            stream.readable.set()
        elif name == "reset" and stream is not None:
            stream.fail(_Reset(str(op.get("error") or "reset"), str(op.get("message") or "")))
            self.streams.pop(stream.id, None)
        elif name == "ping":
            await self.op("pong", id=op.get("id"))
        elif name == "request":
            self.spawn(self._command(op))
        # pong, hello and unknown ops need nothing

    async def _guarded(self, stream, work):
        try:
            await work
        except _Reset:
            pass
        except TargetNotAllowed as exc:
            await stream.reset("target_not_allowed", str(exc))
        except (StreamClosedError, OSError, httpclient.HTTPClientError, ssl.SSLError) as exc:
            await stream.reset("upstream_unreachable", f"OctoPrint could not be reached: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.tunnel.log.exception("Herald relay stream %s failed", stream.id)
            await stream.reset("upstream_error", f"the plugin failed: {exc.__class__.__name__}")
        finally:
            self.streams.pop(stream.id, None)

    def _host_header(self, target, headers):
        """OctoPrint sees the host the app used (as behind any reverse proxy: its WebSocket origin check
        and its URLs need it); the connection itself still goes to the target. A webcam gets its own."""
        own = (target.host, target.port) == (self.config.octoprint_host, self.config.octoprint_port)
        forwarded = headers.get("X-Forwarded-Host", "")
        if own and forwarded and not any(c in forwarded for c in "/\\ @"):
            return forwarded
        default_port = 443 if target.scheme == "https" else 80
        return target.host if target.port == default_port else f"{target.host}:{target.port}"

    # --- HTTP

    async def _http(self, stream, op):
        target = resolve_target(self.config, op.get("url"))
        method = str(op.get("method") or "GET").upper()
        ssl_options = ssl.create_default_context() if target.scheme == "https" else None
        io = await TCPClient().connect(target.host, target.port, ssl_options=ssl_options, timeout=CONNECT_TIMEOUT)
        stream.closers.append(io.close)
        # one socket read, one frame: Tornado reads 64 KiB at a time unless told otherwise
        io.read_chunk_size = max(io.read_chunk_size, self.max_frame)
        connection = HTTP1Connection(io, True, HTTP1ConnectionParameters(
            no_keep_alive=True, chunk_size=self.max_frame, max_body_size=1 << 50, decompress=False))
        headers = httputil.HTTPHeaders()
        for name, value in op.get("headers") or []:
            if str(name).lower() not in _DROPPED_REQUEST_HEADERS:
                headers.add(str(name), str(value))
        headers["Host"] = self._host_header(target, headers)
        headers["Connection"] = "close"
        connection.write_headers(httputil.RequestStartLine(method, target.path, "HTTP/1.1"), headers)
        while True:
            item = await stream.next_item()
            if item is None:
                break
            await connection.write(item[1])
            await stream.consumed(len(item[1]))
        connection.finish()
        relay = _ResponseRelay(stream, connection)
        try:
            await connection.read_response(relay)
        except StreamClosedError:
            if stream.reset_by is not None:
                raise stream.reset_by from None
            if not relay.head_sent:
                raise
        finally:
            io.close()
        if stream.reset_by is not None:
            raise stream.reset_by
        await stream.end()

    # --- WebSocket

    async def _websocket(self, stream, op):
        target = resolve_target(self.config, op.get("url"))
        scheme = "wss" if target.scheme == "https" else "ws"
        headers = httputil.HTTPHeaders()
        for name, value in op.get("headers") or []:
            if str(name).lower() not in _DROPPED_REQUEST_HEADERS and not str(name).lower().startswith("sec-websocket-"):
                headers.add(str(name), str(value))
        headers["Host"] = self._host_header(target, headers)
        request = httpclient.HTTPRequest(f"{scheme}://{target.host}:{target.port}{target.path}", headers=headers,
                                         connect_timeout=CONNECT_TIMEOUT, request_timeout=CONNECT_TIMEOUT)
        subprotocols = [p for p in op.get("subprotocols") or [] if isinstance(p, str)] or None
        try:
            upstream = await websocket.websocket_connect(request, subprotocols=subprotocols,
                                                         max_message_size=MAX_MESSAGE)
        except httpclient.HTTPClientError as exc:
            if exc.code == 599:
                raise
            await stream.head(exc.code, [])
            await stream.end()
            return
        stream.closers.append(upstream.close)
        chosen = upstream.selected_subprotocol
        await stream.head(101, [("Sec-WebSocket-Protocol", chosen)] if chosen else [])

        async def to_octoprint():
            while True:
                item = await stream.next_item()
                if item is None:
                    upstream.close()
                    return
                kind, payload = item
                await upstream.write_message(payload.decode("utf-8", "replace") if kind == WS_TEXT else payload,
                                             binary=kind == WS_BINARY)
                await stream.consumed(len(payload))

        pump = asyncio.ensure_future(to_octoprint())
        try:
            while True:
                await stream.wait_credit()
                message = await upstream.read_message()
                if message is None:
                    break
                if isinstance(message, str):
                    await stream.send_data(WS_TEXT, message.encode("utf-8"))
                else:
                    await stream.send_data(WS_BINARY, message)
        finally:
            pump.cancel()
            upstream.close()
        code = upstream.close_code if isinstance(upstream.close_code, int) else 1000
        await stream.end(code=code, reason=(upstream.close_reason or "")[:120])

    # --- plugin-side commands

    async def _command(self, op):
        command, command_id = op.get("command"), op.get("id")
        handler = self.tunnel.control_handlers.get(command)
        if handler is None:
            await self.op("response", id=command_id,
                          error={"code": "not_allowed", "message": f"the plugin does not do {command!r}"})
            return
        try:
            args = op.get("args") if isinstance(op.get("args"), dict) else {}
            result = await asyncio.get_running_loop().run_in_executor(self.tunnel.executor, handler, args)
            await self.op("response", id=command_id, result=result if isinstance(result, dict) else {})
        except Exception as exc:
            self.tunnel.log.warning("Herald relay command %s refused: %s", command, exc)
            await self.op("response", id=command_id, error={"code": "not_allowed", "message": str(exc)})


class RelayTunnel:
    """The tunnel's lifecycle: its thread, its loop, connecting with backoff and jitter.

    ``config_source()`` is read at every (re)connect and returns a TunnelConfig, or None while
    the relay is off (or the printer not linked). ``control_handlers`` maps a command
    (``mint_api_key``, ``revoke_api_key``) to ``handler(args) -> dict``, run in a worker thread.
    """

    def __init__(self, config_source, *, control_handlers=None, logger=None):
        self.config_source = config_source
        self.control_handlers = dict(control_handlers or {})
        self.log = logger or logging.getLogger("octoprint.plugins.herald.tunnel")
        self.executor = None
        self._thread = None
        self._loop = None
        self._wake = None
        self._stopping = False
        self._session = None
        self._config = None
        self._lock = threading.Lock()
        self.connected = False
        self.last_error = None
        self.connected_since = None

    # --- called from OctoPrint's threads: never block, never raise

    def start(self):
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(ready,), name="herald-relay", daemon=True)
            self._thread.start()
        ready.wait(5)

    def reconfigure(self):
        """Settings changed: reconnect with the new ones (or disconnect when the relay is now off)."""
        self._call_soon(self._on_reconfigure)

    def stop(self, timeout=5.0):
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
        if thread is None:
            return
        self._call_soon(self._on_reconfigure)
        thread.join(timeout)

    def state(self):
        return {"enabled": self._config is not None or self.connected, "connected": self.connected,
                "last_error": self.last_error,
                "streams": len(self._session.streams) if self._session is not None else 0}

    def _call_soon(self, callback):
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop already closed
                pass

    # --- the thread

    def _run(self, ready):
        from concurrent.futures import ThreadPoolExecutor

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self.executor = ThreadPoolExecutor(COMMAND_THREADS, thread_name_prefix="herald-relay-command")
        self._wake = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        except Exception:
            self.log.exception("The Herald relay stopped")
        finally:
            self.connected = False
            self.executor.shutdown(wait=False)
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None

    def _on_reconfigure(self):
        self._wake.set()
        session = self._session
        if session is not None and (self._stopping or self._safe_config() != self._config):
            session.connection.close(1000, "settings changed")

    def _safe_config(self):
        try:
            return self.config_source()
        except Exception as exc:
            self.last_error = f"Relay settings: {exc}"
            return None

    async def _main(self):
        failures = 0
        while not self._stopping:
            config = self._safe_config()
            self._config = config
            if config is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = None
            try:
                await self._connect_and_serve(config)
                failures = 0
                delay = BACKOFF_FIRST * random.uniform(0.5, 1.5)  # a clean close: come back soon
            except _Refused as exc:
                self.last_error = str(exc)
                delay = BACKOFF_REVOKED * random.uniform(0.8, 1.2)
            except Exception as exc:
                failures += 1
                self.last_error = f"Relay: {exc}"
                delay = min(BACKOFF_CAP, BACKOFF_FIRST * (2 ** min(failures, 10)))
                delay = random.uniform(delay / 2, delay)  # jitter: printers do not come back in step
            finally:
                self.connected = False
                self._session = None
            if self._stopping:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _connect_and_serve(self, config):
        verify = config.verify
        request = httpclient.HTTPRequest(
            config.tunnel_url, headers={"Authorization": f"Bearer {config.printer_key}",
                                        "User-Agent": f"OctoPrint-Herald/{__version__}"},
            validate_cert=bool(verify), ca_certs=verify if isinstance(verify, str) else None,
            connect_timeout=CONNECT_TIMEOUT, request_timeout=CONNECT_TIMEOUT)
        try:
            connection = await websocket.websocket_connect(request, max_message_size=MAX_MESSAGE + 64)
        except httpclient.HTTPClientError as exc:
            if exc.code in (401, 403):
                raise _Refused("Relay: Herald refused the printer key; link the printer again.") from None
            raise
        try:
            # many small messages (ops, credit) in both directions: Nagle's algorithm would hold each
            # behind the last one's delayed ACK (40 ms a turn)
            connection.protocol.set_nodelay(True)
            await connection.write_message(encode_op("hello", versions=PROTOCOL_VERSIONS,
                                                     plugin_version=__version__, window=WINDOW))
            hello = await asyncio.wait_for(connection.read_message(), CONNECT_TIMEOUT)
            if not isinstance(hello, str):
                raise ConnectionError(self._closed_reason(connection) or "Herald closed the tunnel at once")
            answer = json.loads(hello)
            if answer.get("op") != "hello" or answer.get("version") not in PROTOCOL_VERSIONS:
                raise ConnectionError(answer.get("message") or "Herald speaks no relay version this plugin knows")
            session = _Session(self, connection, config, int(answer.get("window") or WINDOW),
                               int(answer.get("max_frame") or 64 * 1024))
            self._session = session
            self.connected, self.last_error, self.connected_since = True, None, time.time()
            self.log.info("Herald relay tunnel open")
            await session.run()
            if connection.close_code == CLOSE_UNAUTHORISED:
                raise _Refused("Relay: Herald closed the tunnel: the printer key was revoked or the printer unlinked.")
            if connection.close_code not in (None, 1000, 1001, CLOSE_REPLACED):
                raise ConnectionError(self._closed_reason(connection))
        finally:
            connection.close()
            self.log.info("Herald relay tunnel closed (%s)", self._closed_reason(connection))

    @staticmethod
    def _closed_reason(connection):
        code, reason = connection.close_code, connection.close_reason
        return f"code {code}: {reason}" if code else "connection lost"


class _Refused(Exception):
    """Herald refused the key: wait long before trying again."""


def webcam_urls(settings) -> tuple:
    """The webcam stream and snapshot URLs configured in OctoPrint (1.11's classic webcam, or older settings)."""
    def first(*paths):
        for path in paths:
            try:
                value = settings.global_get(path)
            except Exception:
                value = None
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    return (first(["plugins", "classicwebcam", "stream"], ["webcam", "stream"]),
            first(["plugins", "classicwebcam", "snapshot"], ["webcam", "snapshot"]))


Handler = Callable[[dict], dict]
