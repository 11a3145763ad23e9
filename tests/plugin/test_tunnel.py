"""The plugin's side of the relay: where a stream may go (only OctoPrint and its configured webcam)."""

from __future__ import annotations

import pytest
from octoprint_herald.tunnel import Target, TargetNotAllowed, TunnelConfig, resolve_target

CONFIG = TunnelConfig(herald_url="https://herald.example.com", printer_key="hpk_x", octoprint_port=5000,
                      webcam_stream="http://192.168.1.30:8080/?action=stream", webcam_snapshot="/webcam/?action=snapshot")


def test_paths_go_to_octoprint_itself():
    assert resolve_target(CONFIG, "/api/job?x=1") == Target("http", "127.0.0.1", 5000, "/api/job?x=1")
    assert resolve_target(CONFIG, "/") == Target("http", "127.0.0.1", 5000, "/")


def test_the_reserved_webcam_paths_go_to_the_configured_urls():
    assert resolve_target(CONFIG, "/_herald/webcam/stream") == Target("http", "192.168.1.30", 8080, "/?action=stream")
    # a relative webcam URL is OctoPrint's own server
    assert resolve_target(CONFIG, "/_herald/webcam/snapshot?t=5") == Target(
        "http", "127.0.0.1", 5000, "/webcam/?action=snapshot&t=5")
    bare = TunnelConfig(herald_url="http://h", printer_key="hpk_x")
    with pytest.raises(TargetNotAllowed, match="no webcam stream"):
        resolve_target(bare, "/_herald/webcam/stream")


def test_an_absolute_url_is_allowed_only_when_it_is_the_configured_webcam():
    assert resolve_target(CONFIG, "http://192.168.1.30:8080/?action=stream").host == "192.168.1.30"
    for url in ("http://192.168.1.30:22/", "http://192.168.1.31:8080/?action=stream", "http://192.168.1.30:8080/admin",
                "https://192.168.1.30:8080/?action=stream", "http://10.0.0.1/", "file:///etc/passwd",
                "//192.168.1.30:8080/?action=stream", "//10.0.0.5/secret", "/\\10.0.0.5/x", "", "api/job",
                "/api\r\nHost: evil", None):
        with pytest.raises(TargetNotAllowed):
            resolve_target(CONFIG, url)


def test_tunnel_url_follows_heralds_scheme():
    assert CONFIG.tunnel_url == "wss://herald.example.com/api/v1/printer/tunnel"
    assert TunnelConfig(herald_url="http://10.0.0.2:8080/", printer_key="k").tunnel_url == \
        "ws://10.0.0.2:8080/api/v1/printer/tunnel"


class _Wire:
    """The tunnel WebSocket as the plugin's session writes to it."""

    def __init__(self):
        self.messages = []

    async def write_message(self, message, binary=False):
        self.messages.append((message, binary))


@pytest.mark.parametrize(("herald_max_frame", "largest"), [(65536, 65536), (262144, 262144), (1 << 30, 262144)])
def test_body_frames_keep_to_the_smaller_of_heralds_and_the_plugins_frame_limit(herald_max_frame, largest):
    import asyncio

    from octoprint_herald.tunnel import _HEADER, DATA, _Session, _Stream

    wire = _Wire()
    session = _Session(tunnel=None, connection=wire, config=CONFIG, herald_window=1 << 30,
                       herald_max_frame=herald_max_frame)
    stream = _Stream(7, session, send_credit=1 << 30)
    body = bytes(range(256)) * 4000  # 1,024,000 bytes
    asyncio.run(stream.send_data(DATA, body))
    frames = [message for message, binary in wire.messages if binary]
    assert all(_HEADER.unpack_from(f) == (7, DATA) for f in frames)
    payloads = [f[_HEADER.size:] for f in frames]
    assert max(len(p) for p in payloads) == largest
    assert b"".join(payloads) == body
