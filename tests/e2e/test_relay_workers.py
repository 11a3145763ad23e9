"""The relay with several processes: PostgreSQL and HERALD_WORKERS=2, real hypercorn, real OctoPrint.

The plugin's tunnel lands on one process; requests the other process accepts are handed to it
through its internal listener (appliance/relay/peers.py) and answered all the same."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.test_plugin_octoprint import HeraldOwner, link, plugin_state, wait_for
from tests.e2e.test_relay_octoprint import EMAIL, PASSWORD, Relay, app_connection
from tests.support import pg
from tests.support.octoprint import API_KEY, OctoPrintServer, free_port, running
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url():
    pg.require_server()
    name = f"herald_relay_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg.create_database(name))
    yield pg.url(name)
    asyncio.run(pg.drop_database(name))


@pytest.fixture
def herald(tmp_path: Path, pg_url: str):
    server = LiveServer(data_dir=tmp_path / "herald", port=free_port(),
                        env={"HERALD_DATABASE_URL": pg_url, "HERALD_WORKERS": "2"})
    server.data_dir.mkdir(parents=True)
    made = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", EMAIL,
                           "--password", PASSWORD], env=server.environ(), capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    server.start(timeout=60)
    yield server
    server.stop()


@pytest.fixture
def octoprint(tmp_path: Path, herald: LiveServer):
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Workers Prusa", "relay": {"enabled": True}})
    with running(server, "octoprint-relay-workers"):
        yield server


def test_a_request_reaching_the_process_without_the_tunnel_is_served(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    printer_id = link(octoprint, owner)
    wait_for(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60, "the tunnel")
    relay = Relay(app_connection(owner, printer_id))
    hop_line = "relaying through the Herald process at"
    answers = []
    # each request is a new connection: hypercorn's workers share the socket, so both take some
    for _ in range(200):
        response = requests.get(relay.url + "/api/version", auth=relay.basic, timeout=30, headers={
            "X-Api-Key": API_KEY, "Connection": "close"})
        answers.append(response.status_code if response.status_code == 200 else (response.status_code, response.text))
        if hop_line in herald.log() and len(answers) >= 10:
            break
    assert set(answers) == {200}, answers
    assert hop_line in herald.log(), "no request reached the process without the tunnel"
    # a WebSocket and a body through the hop as well
    posted = [requests.post(relay.url + "/api/files/local", auth=relay.basic, timeout=60,
                            headers={"X-Api-Key": API_KEY, "Connection": "close"},
                            files={"file": (f"w{i}.gcode", b"G28\n" * 5000)}).status_code for i in range(6)]
    assert set(posted) == {201}, posted
    import websocket

    for _ in range(6):
        socket = websocket.create_connection(relay.url.replace("http://", "ws://") + "/sockjs/websocket", timeout=30,
                                             header=[f"Authorization: Bearer {relay.fields['authBearerToken']}"])
        try:
            assert "connected" in socket.recv()
        finally:
            socket.close()


@pytest.fixture
def octoprint_with_control(tmp_path: Path, herald: LiveServer):
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Workers Prusa", "relay": {"enabled": True, "allow_control": True}})
    with running(server, "octoprint-relay-workers-control"):
        yield server


def _stored_relay(pg_url: str, printer_id: str) -> dict:
    import json

    import asyncpg

    async def read():
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchval("SELECT status FROM printers WHERE id = $1", printer_id)
        finally:
            await conn.close()

    status = asyncio.run(read())
    status = json.loads(status) if isinstance(status, str) else status
    return (status or {}).get("relay") or {}


def test_a_plugin_command_reaching_the_process_without_the_tunnel_is_answered_by_the_plugin(
        herald: LiveServer, octoprint_with_control: OctoPrintServer, pg_url: str):
    """Pause with nothing printing: the plugin's own refusal comes back, from whichever process took the request."""
    from tests.e2e.test_relay_control import _api_job, _page_post, _token

    owner = HeraldOwner(herald.url).login()
    printer_id = link(octoprint_with_control, owner)
    wait_for(lambda: (plugin_state(octoprint_with_control).get("relay_tunnel") or {}).get("connected"), 60,
             "the tunnel")
    # The plugin's consent arrives in a status push to one process; the other sees it once that
    # status is flushed to the database (docs/printers.md), so wait for the stored row.
    wait_for(lambda: _stored_relay(pg_url, printer_id).get("allow_control"), 60, "the stored status allowing control")
    assert _page_post(owner, printer_id, "control", allow="on").status_code == 303
    control = {**_token(owner, ["printers:control"]), "Connection": "close"}
    hop_line = "asking the plugin through the Herald process at"
    answers = []
    for _ in range(100):
        response = _api_job(herald, printer_id, control, "pause")
        answers.append((response.status_code, response.json().get("error")))
        if hop_line in herald.log() and len(answers) >= 6:
            break
    assert set(answers) == {(403, "printer_refused")}, answers
    assert hop_line in herald.log(), "no command reached the process without the tunnel"
