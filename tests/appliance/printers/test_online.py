"""One rule for 'online' in every reader (API, dashboard, Alexa); a clean OctoPrint shutdown."""

from __future__ import annotations

import pytest

from appliance.alexa.status_source import source_for_request
from appliance.core.settings import Settings
from appliance.core.times import user_zone
from appliance.printers.dashboard import build_card, view_from_printer
from appliance.printers.models import Event, Printer
from appliance.printers.status import flush_status
from appliance.printers.views import printer_view
from skill.status import condition
from tests.support.printers import STATUS, bearer, make_printer
from tests.support.users import make_user


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(alexa_single_owner=True)


async def readers(herald, printer_id):
    """What the API, the dashboard card and Alexa say of the printer."""
    printer = await Printer.get(id=printer_id)
    api = printer_view(herald, printer)
    card = build_card(view_from_printer(printer, herald), now=herald.clock.now(), zone=user_zone("UTC"),
                      offline_after=herald.settings.offline_after)
    source = await source_for_request(herald, {})
    alexa = next(p for p in source.printers() if p["id"] == printer_id)
    return api["online"], card["state_label"], condition(alexa), card["temperatures"]


async def test_a_silent_printer_is_offline_for_alexa_as_on_the_dashboard(client, herald, clock):
    user = await make_user(admin=True)
    printer, key = await make_printer(herald, user)
    idle = {**STATUS, "state": "Operational", "state_id": "operational", "job": None}
    assert (await client.put("/api/v1/printer/status", json=idle, headers=bearer(key))).status_code == 204
    await flush_status(herald)
    online, label, alexa, temps = await readers(herald, printer.id)
    assert (online, label, alexa) == (True, "Ready", "idle") and temps
    # Silent past offline_after; offline detection has not run yet (or this process just
    # started and may not judge): every reader already says offline, none says idle.
    clock.advance(herald.settings.offline_after + 1)
    online, label, alexa, temps = await readers(herald, printer.id)
    assert (online, label, alexa, temps) == (False, "Offline", "unreachable", [])


async def test_a_clean_octoprint_shutdown_shows_offline_at_once(client, herald, clock):
    user = await make_user(admin=True)
    printer, key = await make_printer(herald, user)
    await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(key))
    await flush_status(herald)
    clock.advance(5)
    response = await client.post("/api/v1/printer/offline", json={"reason": "octoprint_shutdown"},
                                 headers=bearer(key))
    assert response.status_code == 204
    online, label, alexa, temps = await readers(herald, printer.id)
    assert (online, label, alexa, temps) == (False, "Offline", "unreachable", [])
    offline = await Event.filter(printer_id=printer.id, type="printer.offline")
    assert [e.payload["reason"] for e in offline] == ["octoprint_shutdown"]
    # OctoPrint starts again: its first status brings the printer back, with an event.
    clock.advance(30)
    await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(key))
    assert (await readers(herald, printer.id))[:3] == (True, "Printing", "printing")
    await flush_status(herald)
    assert await Event.filter(printer_id=printer.id, type="printer.online").count() == 1
    refused = await client.post("/api/v1/printer/offline", json={"reason": "Not A Reason!"}, headers=bearer(key))
    assert refused.status_code == 422
