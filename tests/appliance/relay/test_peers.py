"""Hops between Herald's processes are signed, expire, and are honoured only on the internal listener."""

from __future__ import annotations

import time

from appliance.relay.peers import RelayPeers


async def test_a_hop_is_signed_and_expires(app, herald, monkeypatch):
    peers = RelayPeers(herald, "this-process")
    via = peers.sign("printer-1", "conn-1")
    assert peers.verify(via) == ("printer-1", "conn-1")
    printer, connection, expires, mac = via.split("|")
    assert peers.verify(f"printer-2|{connection}|{expires}|{mac}") is None  # another printer: bad signature
    assert peers.verify("printer-1|conn-1|9999999999|" + "0" * 64) is None
    assert peers.verify("garbage") is None
    import base64
    import dataclasses

    other_box = type(herald.secret_box)(base64.urlsafe_b64encode(b"k" * 32))
    other_installation = RelayPeers(dataclasses.replace(herald, secret_box=other_box), "elsewhere")
    assert other_installation.verify(via) is None
    monkeypatch.setattr(time, "time", lambda: int(expires) + 1)
    assert peers.verify(via) is None  # too old
