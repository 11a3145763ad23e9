"""The relay's per-connection limits (settings -> RelayLimits -> PrinterLimits) and its audit."""

from __future__ import annotations

import dataclasses
import re

import pytest

from appliance.apps.models import AppConnection, OwnerRelayAccess
from appliance.apps.relay_limits import NO_LIMIT, RelayLimits, printer_limits
from appliance.apps.relay_use import record_relay_use
from appliance.core.errors import Invalid
from appliance.core.settings import Settings
from tests.appliance.apps.test_portal_and_api import _connect, make_printer
from tests.support.users import login, make_user


def test_limits_come_from_settings_and_are_frozen():
    settings = Settings.build(relay_max_streams="5", relay_bandwidth="1000", relay_max_body="4096",
                              relay_idle_seconds="9")
    limits = RelayLimits.of(settings)
    assert limits == RelayLimits(max_streams=5, bandwidth=1000, max_body=4096, idle_seconds=9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_streams = 6  # type: ignore[misc]
    reported = printer_limits(limits)
    assert reported["MaxConcurrentStreams"] == 5 and reported["MaxBandwidthBytesPerSecond"] == 1000
    assert reported["MaxUploadFileSizeBytes"] == 4096 and reported["IdleStreamTimeoutSeconds"] == 9
    assert reported["MaxDownloadFileSizeBytes"] == NO_LIMIT


def test_no_bandwidth_cap_reads_as_unlimited_and_huge_bodies_fit_an_int32():
    reported = printer_limits(RelayLimits(max_streams=1, bandwidth=0, max_body=10**12, idle_seconds=1))
    assert reported["MaxBandwidthBytesPerSecond"] == NO_LIMIT
    assert reported["MaxUploadFileSizeBytes"] == NO_LIMIT and reported["MaxRequestBodyBytes"] == 10**12


@pytest.mark.parametrize("name, value", [("relay_max_streams", "0"), ("relay_bandwidth", "-1"),
                                         ("relay_max_body", "0"), ("relay_idle_seconds", "x")])
def test_bad_limits_are_refused_naming_the_setting(name, value):
    with pytest.raises(ValueError, match=name.upper()):
        Settings.build(**{name: value})


async def test_record_relay_use_adds_bytes_and_marks_last_use(app, client, herald, clock):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    await login(client)
    result = await _connect(client, herald, made.printer.id)
    assert await record_relay_use(herald, result["id"], 100, 2_000)
    clock.advance(30)
    assert await record_relay_use(herald, result["id"], 5_000_000_000, 1)  # past 32 bits
    row = await AppConnection.get(id=result["id"])
    assert (row.bytes_up, row.bytes_down) == (5_000_000_100, 2_001)
    assert row.last_used_at == herald.clock.now()
    assert not await record_relay_use(herald, "nosuchconnection", 1, 1)
    assert not await record_relay_use(herald, "owner-nosuch", 1, 1)
    with pytest.raises(Invalid):
        await record_relay_use(herald, result["id"], -1, 0)
    page = await (await client.get("/account/apps")).get_data(as_text=True)
    assert re.search(r"4\.7\s*GiB up", page) and re.search(r"2\.0\s*KiB down", page), page


async def test_owner_access_use_is_recorded_and_shown_too(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    access = await OwnerRelayAccess.create(id="owner-abc", user_id=user.id, printer_id=made.printer.id,
                                           host_label="own-abc", created_at=herald.clock.now())
    assert await record_relay_use(herald, access.id, 7, 3 * 1024 * 1024)
    row = await OwnerRelayAccess.get(id=access.id)
    assert (row.bytes_up, row.bytes_down) == (7, 3 * 1024 * 1024) and row.last_used_at is not None
    await login(client)
    page = await (await client.get("/account/apps")).get_data(as_text=True)
    assert "Your remote access to OctoPrint" in page and "Voron" in page
    assert re.search(r"7\s*Bytes up, 3\.0\s*MiB down", page), page
