"""The relay end to end: a real OctoPrint (virtual printer) with the plugin, relay on, behind a real
Herald under hypercorn, reached by an App Connection as an app would (docs/relay.md)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.e2e.test_plugin_octoprint import HeraldOwner, link, plugin_state, wait_for
from tests.support.needs import program
from tests.support.octoprint import API_KEY, OctoPrintServer, free_port, running
from tests.support.server import LiveServer, serving_with_admin

pytestmark = pytest.mark.slow

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"


class HeaderEcho(http.server.ThreadingHTTPServer):
    """A webcam snapshot address that answers with the headers it received (what OctoPrint's side sees)."""

    daemon_threads = True

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                seen.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps(seen[-1]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/snapshot"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def echo():
    server = HeaderEcho()
    yield server
    server.close()


@pytest.fixture
def mjpeg_port():
    return free_port()


@pytest.fixture
def herald(tmp_path: Path, request: pytest.FixtureRequest):
    # indirect parametrization may hand in extra settings
    with serving_with_admin(tmp_path / "herald", free_port(), EMAIL, PASSWORD, getattr(request, "param", {})) as server:
        yield server


@pytest.fixture
def octoprint(tmp_path: Path, herald: LiveServer, echo: HeaderEcho, mjpeg_port: int):
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Relay Prusa", "interval_printing": 5, "interval_idle": 10,
        "relay": {"enabled": True}})
    server.prepare()
    import yaml

    config_path = server.basedir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    # the classic webcam's settings (OctoPrint 1.11 keeps them under plugins.classicwebcam)
    config["plugins"]["classicwebcam"] = {"_config_version": 1, "stream": f"http://127.0.0.1:{mjpeg_port}/stream.mjpg",
                                          "snapshot": echo.url}
    config_path.write_text(yaml.safe_dump(config))
    with running(server, "octoprint-relay"):
        yield server


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_connection(owner: HeraldOwner, printer_id: str) -> dict[str, str]:
    """The portal as OctoPod walks it: consent page, approve, the completion redirect's fields."""
    query = "appid=octopod&returnUrl=octopod://octoeverywhere"
    page = owner.session.get(f"{owner.base_url}/appportal/v1/consent?{query}&printer={printer_id}", timeout=10)
    assert page.status_code == 200, page.text
    response = owner.session.post(owner.base_url + "/appportal/v1/consent", allow_redirects=False, timeout=10, data={
        "csrf_token": _CSRF.search(page.text).group(1), "printer": printer_id, "decision": "approve",
        "appId": "octopod", "returnUrl": "octopod://octoeverywhere"})
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


class Relay:
    """An app using its App Connection: the relay URL and its credentials."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.url = fields["url"].rstrip("/")
        self.basic = (fields["authBasicHttpUser"], fields["authBasicHttpPassword"])
        self.bearer = {"Authorization": f"Bearer {fields['authBearerToken']}"}

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        headers = {**self.bearer, **kwargs.pop("headers", {})}
        return requests.get(self.url + path, headers=headers, **kwargs)


@pytest.fixture
def relay(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    printer_id = link(octoprint, owner)
    wait_for(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60,
             "the plugin's relay tunnel to open")
    made = Relay(app_connection(owner, printer_id))
    made.owner = owner
    made.printer_id = printer_id
    made.octoprint = octoprint
    made.herald = herald
    return made


def test_api_through_the_relay_with_basic_and_bearer(relay: Relay, echo: HeaderEcho):
    assert relay.url.startswith(relay.herald.url + "/relay/app-")
    # X-Api-Key passes through to OctoPrint; the connection's credential is Herald's.
    basic = requests.get(relay.url + "/api/version", auth=relay.basic, headers={"X-Api-Key": API_KEY}, timeout=30)
    assert basic.status_code == 200, basic.text
    assert basic.json()["server"] and "api" in basic.json()
    bearer = relay.get("/api/job", headers={"X-Api-Key": API_KEY})
    assert bearer.status_code == 200, bearer.text
    assert bearer.json()["state"] == "Operational"
    # without OctoPrint's key, OctoPrint itself refuses: Herald's credential opened no door in OctoPrint
    anonymous = relay.get("/api/printer")
    assert anonymous.status_code in (401, 403), anonymous.text
    # no credential, a wrong one: Herald refuses before anything is relayed
    assert requests.get(relay.url + "/api/version", timeout=10).status_code == 401
    assert requests.get(relay.url + "/api/version", auth=(relay.basic[0], "wrong"), timeout=10).status_code == 401

    # what the other side receives: no Authorization, no Herald cookie; X-Api-Key and its own cookie kept
    seen = relay.get("/_herald/webcam/snapshot", headers={"X-Api-Key": API_KEY, "Cookie":
                                                         "herald_session=stolen; session_P80=octo"})
    assert seen.status_code == 200, seen.text
    headers = seen.json()
    assert "authorization" not in headers
    assert headers["x-api-key"] == API_KEY
    assert headers["cookie"] == "session_P80=octo"
    assert headers["x-script-name"] == urlsplit(relay.url).path
    assert headers["x-forwarded-host"] == urlsplit(relay.url).netloc
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    basic_seen = requests.get(relay.url + "/_herald/webcam/snapshot", auth=relay.basic, timeout=30).json()
    assert "authorization" not in basic_seen


def test_octoprint_ui_paths_follow_the_connection_url(relay: Relay):
    prefix = urlsplit(relay.url).path
    bare = relay.get("", allow_redirects=False)  # the url itself: OctoPrint's root is under it, with a slash
    assert bare.status_code == 308 and bare.headers["Location"] == prefix + "/"
    page = relay.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text[:500]
    # OctoPrint builds its URLs from X-Script-Name: its static files are under the connection's url
    assert f'{prefix}/static/' in page.text
    asset = re.search(re.escape(prefix) + r'(/static/[^"\']+\.js)', page.text).group(1)
    assert relay.get(asset).status_code == 200


def test_octoprint_client_library_through_the_relay(relay: Relay):
    import octoprint_client

    # an app keeps the connection's Basic credential in the base URL, as the portal's fields allow
    parts = urlsplit(relay.url)
    user, password = relay.basic
    client = octoprint_client.Client(f"{parts.scheme}://{user}:{password}@{parts.netloc}{parts.path}", API_KEY)
    response = client.get("/api/version")
    assert response.status_code == 200, response.text
    assert "server" in response.json()
    assert client.get("/api/connection").json()["current"]["state"] == "Operational"
    uploaded = client.upload("/api/files/local", _write(relay.octoprint.basedir.parent / "client.gcode", "G28\nG1 X10\n"))
    assert uploaded.status_code == 201, uploaded.text
    assert client.get("/api/files/local/client.gcode").json()["name"] == "client.gcode"
    assert client.post_json("/api/printer/command", {"commands": ["M105"]}).status_code == 204


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _logged_in_push_socket(relay: Relay):
    """OctoPod's way: a passive POST /api/login with the API key, then {"auth": "user:session"}."""
    import websocket  # websocket-client, installed with OctoPrint

    login = requests.post(relay.url + "/api/login", json={"passive": True}, auth=relay.basic, timeout=30,
                          headers={"X-Api-Key": API_KEY})
    assert login.status_code == 200, login.text
    user = login.json()
    ws_url = relay.url.replace("http://", "ws://", 1) + "/sockjs/websocket"
    token = base64.b64encode(":".join(relay.basic).encode()).decode()
    socket = websocket.create_connection(ws_url, header=[f"Authorization: Basic {token}"], timeout=30)
    first = json.loads(socket.recv())
    assert "connected" in first, first
    socket.send(json.dumps({"auth": f"{user['name']}:{user['session']}"}))
    return socket


def test_the_push_socket_the_way_octopod_logs_in(relay: Relay):
    """A passive POST /api/login with the API key, then {"auth": "user:session"} on the socket."""
    import websocket  # websocket-client, installed with OctoPrint

    socket = _logged_in_push_socket(relay)
    try:
        kinds = []
        deadline = time.monotonic() + 60
        while "current" not in kinds and time.monotonic() < deadline:
            message = json.loads(socket.recv())
            kinds += list(message)
        assert "current" in kinds, kinds
    finally:
        socket.close()
    ws_url = relay.url.replace("http://", "ws://", 1) + "/sockjs/websocket"
    # without the connection's credential the handshake is refused by Herald
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, timeout=30)
    assert refused.value.status_code == 401


def test_a_large_gcode_upload_and_download_byte_for_byte(relay: Relay, tmp_path: Path):
    source = tmp_path / "big.gcode"
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        line = 0
        while handle.tell() < 52 * 1024 * 1024:
            chunk = "".join(f"G1 X{(line + i) % 200}.{i % 10} Y{(line * 7 + i) % 200} E{line + i}.5 ; {line + i}\n"
                            for i in range(2000)).encode()
            handle.write(chunk)
            digest.update(chunk)
            line += 2000
    size = source.stat().st_size
    with open(source, "rb") as handle:
        response = requests.post(relay.url + "/api/files/local", auth=relay.basic, timeout=600,
                                 headers={"X-Api-Key": API_KEY}, files={"file": ("big.gcode", handle)})
    assert response.status_code == 201, response.text
    stored = relay.octoprint.basedir / "uploads" / "big.gcode"
    assert stored.stat().st_size == size
    download = hashlib.sha256()
    received = 0
    with requests.get(relay.url + "/downloads/files/local/big.gcode", auth=relay.basic, stream=True, timeout=600,
                      headers={"X-Api-Key": API_KEY}) as answer:
        assert answer.status_code == 200, answer.text[:300]
        for chunk in answer.iter_content(256 * 1024):
            download.update(chunk)
            received += len(chunk)
    assert received == size
    assert download.hexdigest() == digest.hexdigest()


def test_a_request_naming_another_address_is_refused_by_the_plugin(relay: Relay):
    # a scheme-relative path names another host; the plugin refuses before connecting anywhere
    for path in ("//10.0.0.5/secret", "//127.0.0.1:22/"):
        response = relay.get(path)
        assert response.status_code == 502, (path, response.status_code, response.text)
        assert "relays only to OctoPrint" in response.json()["Error"]


def test_relay_off_and_printer_offline(relay: Relay, herald: LiveServer):
    octoprint = relay.octoprint
    assert relay.get("/api/version", headers={"X-Api-Key": API_KEY}).status_code == 200
    # the owner turns the relay off in OctoPrint: the tunnel closes, apps get 601, browsers a page
    saved = octoprint.api("POST", "/api/settings", json={"plugins": {"herald": {"relay": {"enabled": False}}}})
    assert saved.status_code == 200, saved.text
    wait_for(lambda: not (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 30,
             "the tunnel to close")
    off = relay.get("/api/version")
    assert off.status_code == 601 and "relay is off" in off.json()["Error"]
    page = relay.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 502 and "relay is off" in page.text and "<h1>" in page.text
    # and on again
    octoprint.api("POST", "/api/settings", json={"plugins": {"herald": {"relay": {"enabled": True}}}})
    wait_for(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60, "the tunnel again")
    assert relay.get("/api/version", headers={"X-Api-Key": API_KEY}).status_code == 200
    # OctoPrint stops: the printer goes offline (the plugin says goodbye), apps get 601
    octoprint.stop()
    wait_for(lambda: relay.get("/api/version").status_code == 601, 30, "601 once the printer is gone")
    gone = relay.get("/api/version", headers={"Accept": "text/html,application/xhtml+xml"})
    assert gone.status_code == 502 and "not connected" in gone.text


def _ffmpeg_mjpeg(port: int) -> subprocess.Popen:
    return subprocess.Popen([program("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re",
                             "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-q:v", "5", "-f", "mpjpeg",
                             "-content_type", "multipart/x-mixed-replace;boundary=ffmpeg",
                             "-listen", "1", f"http://127.0.0.1:{port}/stream.mjpg"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frames(response: requests.Response):
    """JPEG frames of a multipart MJPEG response, as they arrive."""
    buffer = b""
    for chunk in response.iter_content(16 * 1024):
        buffer += chunk
        while True:
            start = buffer.find(b"\xff\xd8")
            end = buffer.find(b"\xff\xd9", start + 2) if start >= 0 else -1
            if start < 0 or end < 0:
                break
            yield buffer[start:end + 2]
            buffer = buffer[end + 2:]


def test_mjpeg_webcam_through_the_relay_while_the_api_answers(relay: Relay, mjpeg_port: int):
    streamer = _ffmpeg_mjpeg(mjpeg_port)
    try:
        wait_for(lambda: _listening(mjpeg_port), 30, "ffmpeg to listen")
        with relay.get("/_herald/webcam/stream", stream=True) as stream:
            assert stream.status_code == 200, stream.text[:300]
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            frames = _frames(stream)
            first = next(frames)
            assert first[:2] == b"\xff\xd8"
            # while the stream runs (and is read slowly), API calls are answered between its frames
            for _ in range(3):
                answer = relay.get("/api/job", headers={"X-Api-Key": API_KEY})
                assert answer.status_code == 200
                next(frames)  # the stream is still alive after the call
            count = sum(1 for _, _frame in zip(range(20), frames, strict=False))
            assert count == 20
    finally:
        streamer.kill()
        streamer.wait(10)


def test_a_webcam_watcher_that_only_receives_is_not_cut_off(relay: Relay, mjpeg_port: int):
    """A viewer sends nothing after its request: with Herald's defaults the stream runs on past what
    used to be hypercorn's 30 s read timeout (HERALD_IDLE_READ_SECONDS is off; docs/relay.md).
    ffmpeg makes its 10 frames a second in real time (-re), so 400 frames are 40 s of stream
    however busy the machine is; a cut stream ends before them."""
    streamer = _ffmpeg_mjpeg(mjpeg_port)
    try:
        wait_for(lambda: _listening(mjpeg_port), 30, "ffmpeg to listen")
        with relay.get("/_herald/webcam/stream", stream=True, timeout=60) as stream:
            assert stream.status_code == 200
            frames = sum(1 for _, _frame in zip(range(400), _frames(stream), strict=False))
            assert frames == 400, f"the stream ended after {frames} frames"
    finally:
        streamer.kill()
        streamer.wait(10)


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc (a probe connection would be
    ffmpeg's one and only client)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def test_revoking_the_connection_cuts_its_live_webcam_stream(relay: Relay, mjpeg_port: int):
    streamer = _ffmpeg_mjpeg(mjpeg_port)
    try:
        wait_for(lambda: _listening(mjpeg_port), 30, "ffmpeg to listen")
        with relay.get("/_herald/webcam/stream", stream=True, timeout=60) as stream:
            assert stream.status_code == 200
            frames = _frames(stream)
            next(frames)
            owner = relay.owner
            page = owner.session.get(owner.base_url + "/account/apps", timeout=10)
            revoked = owner.session.post(f"{owner.base_url}/account/app-connections/{relay.fields['id']}/revoke",
                                         data={"csrf_token": _CSRF.search(page.text).group(1)}, timeout=10)
            assert revoked.status_code in (200, 302, 303), revoked.text
            # the stream is cut (a truncated response, not a clean end) instead of running on
            after = 0
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for _frame in frames:
                    after += 1
                    assert after < 600, "the stream kept running after the revoke"
        assert relay.get("/api/version").status_code == 604
    finally:
        streamer.kill()
        streamer.wait(10)


@pytest.mark.parametrize("herald", [{"HERALD_IDLE_READ_SECONDS": "10"}], indirect=True)
def test_a_listening_push_socket_and_the_tunnel_outlive_the_idle_read_timeout(relay: Relay):
    """Clients that only listen send nothing of their own; Herald's WebSocket pings keep them (and the
    plugin's tunnel) from hypercorn's read timeout, here 10 s (shorter makes the fixture's own keep-alive
    requests race hypercorn closing idle connections)."""
    socket = _logged_in_push_socket(relay)
    try:
        started = time.monotonic()
        received = 0
        while time.monotonic() - started < 25:  # two and a half times the read timeout, only listening
            socket.recv()  # OctoPrint's messages; websocket-client answers Herald's pings meanwhile
            received += 1
        assert socket.connected and received > 0
    finally:
        socket.close()
    assert (plugin_state(relay.octoprint).get("relay_tunnel") or {}).get("connected")
    assert relay.get("/api/version", headers={"X-Api-Key": API_KEY}).status_code == 200
