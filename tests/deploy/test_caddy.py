"""image/Caddyfile in Debian's Caddy in front of the real Herald: HTTPS, HTTP/2, redirect.

Caddy gets its certificate from its own local CA here (a public one needs a public
domain and open ports, which a test machine does not have); everything else is the
Caddyfile compose.yaml and install.sh use, unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.deploy.browser import NoRedirect, free_port
from tests.deploy.conftest import ROOT, artifacts_dir
from tests.support.server import LiveServer


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect(),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


def _start(caddy_bin: str, caddyfile: Path, home: Path, log_path: Path, **env: str) -> subprocess.Popen:
    """Caddy on the test's Caddyfile, its state (the local CA) under home, nothing of Herald's env."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    environ.update(HOME=str(home), XDG_DATA_HOME=str(home / "xdg-data"),
                   XDG_CONFIG_HOME=str(home / "xdg-config"), **env)
    with open(log_path, "wb") as log:
        return subprocess.Popen([caddy_bin, "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
                                env=environ, stdout=log, stderr=subprocess.STDOUT)


def _stop(caddy: subprocess.Popen) -> None:
    if caddy.poll() is None:
        caddy.send_signal(signal.SIGTERM)
        try:
            caddy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            caddy.kill()
            caddy.wait(timeout=5)


def test_caddyfile_serves_herald_over_https(tmp_path: Path):
    caddy_bin = shutil.which("caddy")
    assert caddy_bin, "caddy is missing: .ci/run installs Debian's caddy package"
    herald_port, http_port, https_port = free_port(), free_port(), free_port()
    public = f"https://localhost:{https_port}"
    server = LiveServer(tmp_path / "data", herald_port,
                        env={"HERALD_PUBLIC_URL": public, "HERALD_TRUSTED_PROXIES": "127.0.0.1"})
    # Test-only global options first (loopback only, free ports, local CA, no changes to
    # this machine's trust store); the site block is image/Caddyfile as shipped.
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
        "\tlocal_certs\n\tskip_install_trust\n}\n" + (ROOT / "image/Caddyfile").read_text()
    )
    log_path = artifacts_dir() / "caddy.log"
    server.start()
    caddy = _start(caddy_bin, caddyfile, tmp_path, log_path,
                   HERALD_DOMAIN="localhost", HERALD_UPSTREAM=f"127.0.0.1:{herald_port}")
    try:
        root_cert = tmp_path / "xdg-data/caddy/pki/authorities/local/root.crt"
        context = None
        deadline = time.monotonic() + 30
        while True:
            assert caddy.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "Caddy did not serve HTTPS in 30 s:\n" + log_path.read_text()
            if root_cert.exists():
                context = ssl.create_default_context(cafile=str(root_cert))
                try:
                    status, headers, body = _get(f"{public}/healthz", context)
                    if status == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.2)
        assert json.loads(body)["status"] == "ok"
        # Herald knows it is served over HTTPS (from HERALD_PUBLIC_URL) and says so.
        assert headers.get("Strict-Transport-Security", "").startswith("max-age=")
        status, headers, page = _get(f"{public}/login", context)
        assert status == 200 and 'name="csrf_token"' in page

        # HTTP is redirected to HTTPS (to port 443, where Caddy listens outside this test).
        status, headers, _ = _get(f"http://localhost:{http_port}/login")
        assert status in (301, 308), headers
        assert headers["Location"].startswith("https://localhost") and headers["Location"].endswith("/login")

        # HTTP/2 is offered (ALPN), as Alexa and browsers use it.
        alpn = ssl.create_default_context(cafile=str(root_cert))
        alpn.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw:
            with alpn.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "h2"
    finally:
        _stop(caddy)
        server.stop()


def _docs_recipe() -> str:
    text = (ROOT / "docs/deploy.md").read_text()
    block = text.split("<!-- internal-ca-recipe -->", 1)[1].split("<!-- /internal-ca-recipe -->", 1)[0]
    return block.split("```caddyfile", 1)[1].split("```", 1)[0]


def test_internal_ca_recipe_from_the_docs_serves_herald(tmp_path: Path):
    """docs/deploy.md's "try it first with Caddy's internal CA" site block, as written."""
    caddy_bin = shutil.which("caddy")
    assert caddy_bin, "caddy is missing: .ci/run installs Debian's caddy package"
    recipe = _docs_recipe()
    assert "tls internal" in recipe
    herald_port, http_port, https_port = free_port(), free_port(), free_port()
    name = recipe.split("{", 1)[0].strip()
    server = LiveServer(tmp_path / "data", herald_port,
                        env={"HERALD_PUBLIC_URL": f"https://{name}", "HERALD_TRUSTED_PROXIES": "127.0.0.1"})
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n\tskip_install_trust\n}}\n"
        + recipe.replace("127.0.0.1:8080", f"127.0.0.1:{herald_port}"))
    log_path = artifacts_dir() / "caddy-internal-ca.log"
    server.start()
    caddy = _start(caddy_bin, caddyfile, tmp_path, log_path)
    try:
        root_cert = tmp_path / "xdg-data/caddy/pki/authorities/local/root.crt"
        deadline = time.monotonic() + 30
        reply = b""
        while True:
            assert caddy.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "Caddy did not serve HTTPS in 30 s:\n" + log_path.read_text()
            if root_cert.exists():
                # A browser on the LAN that trusts Caddy's root, asking for the recipe's name.
                context = ssl.create_default_context(cafile=str(root_cert))
                try:
                    with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw:
                        with context.wrap_socket(raw, server_hostname=name) as tls:
                            tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
                                        .encode())
                            reply = b""
                            while chunk := tls.recv(65536):
                                reply += chunk
                    if reply.startswith(b"HTTP/1.1 200"):
                        break
                except OSError:
                    pass
            time.sleep(0.2)
        assert b'"status": "ok"' in reply or b'"status":"ok"' in reply, reply[-500:]
    finally:
        _stop(caddy)
        server.stop()
