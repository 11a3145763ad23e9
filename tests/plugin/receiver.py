"""A real HTTP server on 127.0.0.1 that answers like Herald's /api/v1 and records what it got.

The plugin's unit tests talk to it over a socket with the plugin's own client, so timeouts,
status codes and multipart bodies are exercised for real.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def parts(self) -> dict[str, bytes]:
        """The parts of a multipart/form-data body, by name."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + self.body)
        return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                for part in message.iter_parts()}


@dataclass
class Receiver:
    """Answers from ``routes`` ((method, path) -> callable returning (status, body)); records requests."""

    requests: list[Request] = field(default_factory=list)
    routes: dict = field(default_factory=dict)
    fail_with: int | None = None  # answer every request with this status
    hang: float = 0.0  # seconds to sleep before answering
    # While set to an Event, every request waits for it before being answered; ``held`` is
    # set once a request waits, so a test can order what happens against a hanging Herald.
    hold: threading.Event | None = None
    held: threading.Event = field(default_factory=threading.Event)
    snapshot: bytes = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"
    tls: ssl.SSLContext | None = None  # serve HTTPS with this server context

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if receiver.hang:
                    time.sleep(receiver.hang)
                hold = receiver.hold
                if hold is not None and self.path != "/webcam/snapshot":
                    receiver.held.set()
                    hold.wait(60)
                request = Request(self.command, self.path, dict(self.headers), body)
                status, answer, content_type = receiver.answer(request)
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: Request):
        if request.path == "/webcam/snapshot":
            return 200, self.snapshot, "image/jpeg"
        if self.fail_with is not None:
            return self.fail_with, {"error": "failing", "message": "told to fail"}, "application/json"
        self.requests.append(request)
        route = self.routes.get((request.method, request.path))
        if route is not None:
            status, body = route(request)
            return status, body, "application/json"
        defaults = {
            ("GET", "/healthz"): (200, {"status": "ok", "version": "0.1.0"}),
            ("POST", "/api/v1/printer/events"): (202, {}),
            ("PUT", "/api/v1/printer/status"): (204, b""),
            ("POST", "/api/v1/printer/verify"): (200, {"printer_id": "p1", "name": "Prusa", "herald_version": "0.1.0"}),
            ("DELETE", "/api/v1/printer"): (204, b""),
            ("POST", "/api/v1/printer/offline"): (204, b""),
            ("PUT", "/api/v1/printer/pictures/thumbnail"): (204, b""),
            ("PUT", "/api/v1/printer/pictures/webcam"): (204, b""),
        }
        status, body = defaults.get((request.method, request.path), (404, {"error": "not_found"}))
        return status, body, "application/json"

    def of(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def events(self) -> list[dict]:
        result = []
        for request in self.of("POST", "/api/v1/printer/events"):
            if request.headers.get("Content-Type", "").startswith("multipart/"):
                result.append(json.loads(request.parts()["event"]))
            else:
                result.append(request.json())
        return result

    def statuses(self) -> list[dict]:
        return [r.json() for r in self.of("PUT", "/api/v1/printer/status")]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
