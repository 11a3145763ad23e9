"""docs/deploy.md's relay recipe in Debian's Caddy: on-demand TLS asks Herald, per host.

The recipe's Caddyfile, as written, with test-only global options (loopback, free ports,
Caddy's local CA instead of a public one): a host of a live App Connection gets a certificate at
its first handshake and reaches Herald with its Host intact; a made-up host, or one of a revoked
connection, gets none, because Herald's ``ask`` endpoint says no.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sqlite3
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.deploy.browser import free_port
from tests.deploy.conftest import ROOT, artifacts_dir
from tests.deploy.test_caddy import _start, _stop
from tests.support.browser import SeededServer

RELAY = "relay.example-relay.net"


def _recipe() -> str:
    text = (ROOT / "docs/deploy.md").read_text()
    block = text.split("<!-- relay-tls-recipe -->", 1)[1].split("<!-- /relay-tls-recipe -->", 1)[0]
    return block.split("```caddyfile", 1)[1].split("```", 1)[0]


def _add_connection(server: SeededServer, printer_id: str, revoked: bool = False) -> str:
    label = "app-" + secrets.token_hex(16)
    now = str(datetime.now(UTC))
    with sqlite3.connect(server.db_path, timeout=10, isolation_level=None) as db:
        (user_id,) = db.execute("SELECT owner_id FROM printers WHERE id = ?", (printer_id,)).fetchone()
        db.execute(
            "INSERT INTO app_connections (id, user_id, printer_id, printer_name, app_id, app_name, host_label,"
            " app_token_hash, bearer_token_hash, basic_user, basic_password_hash, octoprint_api_key_app_name,"
            " octoprint_api_key_sealed, created_at, revoked_at, revoked_reason, bytes_up, bytes_down)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0)",
            (secrets.token_hex(16), user_id, printer_id, "Voron", "octopod", "OctoPod", label,
             secrets.token_hex(32), secrets.token_hex(32), "herald-x", secrets.token_hex(32), "", "", now,
             now if revoked else None, "test" if revoked else ""))
    return f"{label}.{RELAY}"


def _get(port: int, context: ssl.SSLContext, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET /api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    return reply


def test_on_demand_tls_asks_herald_and_serves_only_live_hosts(tmp_path: Path):
    caddy_bin = shutil.which("caddy")
    assert caddy_bin, "caddy is missing: .ci/run installs Debian's caddy package"
    recipe = _recipe()
    assert "on_demand" in recipe and "/_herald/tls-ask" in recipe
    herald_port, http_port, https_port = free_port(), free_port(), free_port()
    server = SeededServer(data_dir=tmp_path / "data", port=herald_port, env={
        "HERALD_PUBLIC_URL": "https://herald.example.com", "HERALD_RELAY_URL": f"https://{RELAY}",
        "HERALD_TRUSTED_PROXIES": "127.0.0.1"})
    server.data_dir.mkdir(parents=True)
    server.create_admin()
    caddyfile = tmp_path / "Caddyfile"
    test_globals = (f"\tadmin off\n\tdefault_bind 127.0.0.1\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
                    "\tlocal_certs\n\tskip_install_trust\n")
    body = recipe.replace("127.0.0.1:8080", f"127.0.0.1:{herald_port}").lstrip()
    assert body.startswith("{\n")
    caddyfile.write_text("{\n" + test_globals + body[2:])
    log_path = artifacts_dir() / "caddy-relay-tls.log"
    server.start()
    caddy = _start(caddy_bin, caddyfile, tmp_path, log_path)
    try:
        printer_id, _key = server.add_printer("Voron", {"state": "Operational", "state_id": "operational"},
                                              datetime.now(UTC))
        live = _add_connection(server, printer_id)
        revoked = _add_connection(server, printer_id, revoked=True)
        root_cert = tmp_path / "xdg-data/caddy/pki/authorities/local/root.crt"
        deadline = time.monotonic() + 30
        reply = b""
        while not reply:
            assert caddy.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "Caddy did not serve the relay host in 30 s:\n" + log_path.read_text()
            if root_cert.exists():
                try:
                    reply = _get(https_port, ssl.create_default_context(cafile=str(root_cert)), live)
                except OSError:
                    time.sleep(0.3)
            else:
                time.sleep(0.2)
        # Herald saw the connection's own host: the relay's answer (credentials needed), not a Herald page
        assert reply.startswith(b"HTTP/1.1 401"), reply[:300]
        assert b"App Connection" in reply
        context = ssl.create_default_context(cafile=str(root_cert))
        for refused in (revoked, f"app-{'0' * 32}.{RELAY}", f"anything.{RELAY}"):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _get(https_port, context, refused)
        # the same host, once its connection is live, gets its certificate: Caddy asked Herald about it
        # (a refused name is tried again after Caddy's back-off, which 2.6 keeps short for an ask "no")
        with sqlite3.connect(server.db_path, timeout=10, isolation_level=None) as db:
            db.execute("UPDATE app_connections SET revoked_at = NULL WHERE host_label = ?", (revoked.split(".")[0],))
        deadline = time.monotonic() + 90
        while True:
            try:
                assert _get(https_port, context, revoked).startswith(b"HTTP/1.1 401")
                break
            except (ssl.SSLError, ConnectionError):
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
    finally:
        _stop(caddy)
        server.stop()
