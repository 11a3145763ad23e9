"""A real Home Assistant core (2024.3.3, the newest on Python 3.11) with its MQTT integration on the
same mosquitto as Herald: the printer appears as a device with its entities, their states follow the
plugin's pushes, its device triggers are there, and the owner's "stop publishing" removes it.

Home Assistant's venv is built by scripts/homeassistant-venv (cached under
~/.cache/herald-homeassistant/<version>); its first build takes several minutes. Its frontend is
loaded too, and Chromium takes a screenshot of the device page (docs/home-assistant.md shows it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.core.clock import FakeClock
from appliance.core.settings import Settings
from tests.support.home_assistant import HomeAssistant, homeassistant_venv
from tests.support.mqtt import Observer, mosquitto  # noqa: F401  (fixture)
from tests.support.printers import STATUS, bearer, make_printer
from tests.support.users import login, make_user

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "images" / "home-assistant-device.png"
ARTIFACTS = Path(os.environ.get("HERALD_TEST_ARTIFACTS", "test-artifacts")) / "home-assistant"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def clock() -> FakeClock:
    # today, to the second, so Home Assistant shows "in 39 minutes" rather than "last week"
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(tmp_path, database_url, mosquitto) -> Settings:  # noqa: F811
    return Settings.build(data_dir=str(tmp_path / "herald"), database_url=database_url,
                          public_url="http://herald.test", mqtt_host="127.0.0.1", mqtt_port=mosquitto.port)


@pytest.fixture
async def home_assistant(tmp_path, mosquitto):  # noqa: F811
    venv = homeassistant_venv()
    hass = HomeAssistant(venv, tmp_path / "home-assistant", mosquitto.port, frontend=True)
    hass.directory.mkdir()
    try:
        await hass.start()
        yield hass
    finally:
        hass.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "home-assistant.log").write_text(hass.log_tail(200_000))


async def until(check, timeout: float = 180.0, every: float = 0.5):
    """Poll Home Assistant until ``check()`` returns something truthy (a bound, not a speed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError("Home Assistant did not get there in time")
        await asyncio.sleep(every)


async def put_status(client, key, body) -> None:
    response = await client.put("/api/v1/printer/status", json=body, headers=bearer(key))
    assert response.status_code == 204


async def test_home_assistant_sees_the_printer_as_a_device_with_live_entities(client, herald, clock, mosquitto,  # noqa: F811
                                                                               home_assistant):
    admin = await make_user(admin=True)
    printer, key = await make_printer(herald, admin, "Ender 3")
    async with Observer(mosquitto.port) as observer:
        await put_status(client, key, STATUS)
        await observer.wait_for(lambda o: (o.json(f"herald/{printer.id}/state") or {}).get("job_percentage") == 42.5)

    async def entities():
        states = await home_assistant.states()
        ready = states.get("sensor.ender_3_current_state", {}).get("state") == "printing"
        return states if ready else None

    states = await until(entities)
    assert states["sensor.ender_3_job_percentage"]["state"] == "42.5"
    assert states["sensor.ender_3_job_percentage"]["attributes"]["unit_of_measurement"] == "%"
    assert states["sensor.ender_3_actual_tool0_temp"]["state"] == "210.1"
    assert states["sensor.ender_3_target_bed_temp"]["state"] == "60.0"
    assert states["sensor.ender_3_actual_tool0_temp"]["attributes"]["device_class"] == "temperature"
    assert states["sensor.ender_3_current_file"]["state"] == "benchy.gcode"
    assert states["sensor.ender_3_z_height"]["state"] == "12.4"
    pushed_at = clock.now()  # finish: the push's moment plus the time left; start: less the time printed
    assert states["sensor.ender_3_estimated_finish_time"]["state"] == (pushed_at + timedelta(seconds=2345)).isoformat()
    assert states["sensor.ender_3_start_time"]["state"] == (pushed_at - timedelta(seconds=1234)).isoformat()
    assert states["binary_sensor.ender_3_online"]["state"] == "on"
    assert states["binary_sensor.ender_3_printing"]["state"] == "on"
    assert states["sensor.ender_3_current_state"]["attributes"]["friendly_name"] == "Ender 3 Current State"

    # the device, as Home Assistant's device registry holds it, and its device triggers
    devices, = await home_assistant.ws({"type": "config/device_registry/list"})
    device = next(d for d in devices if ["mqtt", f"herald_{printer.id}"] in d["identifiers"])
    assert device["name"] == "Ender 3" and device["manufacturer"] == "Herald"
    assert device["model"] == "OctoPrint (Herald plugin)"
    assert device["configuration_url"] == f"http://herald.test/printers/{printer.id}"
    triggers, = await home_assistant.ws({"type": "device_automation/trigger/list", "device_id": device["id"]})
    assert {"print_done", "print_started", "print_failed", "print_paused", "print_resumed",
            "needs_attention"} <= {t["type"] for t in triggers if t.get("domain") == "mqtt"}

    # the next push reaches Home Assistant (pushed, not polled)
    await put_status(client, key, {**STATUS, "job": {**STATUS["job"], "progress": 61.0}})

    async def progressed():
        states = await home_assistant.states()
        return states.get("sensor.ender_3_job_percentage", {}).get("state") == "61.0"

    await until(progressed)
    await _screenshot_device_page(home_assistant, device["id"])

    # the owner stops publishing: Home Assistant removes the entities
    csrf = await login(client)
    response = await client.post(f"/printers/{printer.id}/home-assistant", form={"publish": "off", "csrf_token": csrf})
    assert response.status_code == 302

    async def removed():
        states = await home_assistant.states()
        return not any(entity.startswith(("sensor.ender_3_", "binary_sensor.ender_3_")) for entity in states)

    await until(removed)


async def _screenshot_device_page(hass: HomeAssistant, device_id: str) -> None:
    """Home Assistant's frontend in Chromium, logged in with the owner's tokens; saved as an artifact."""
    _check_chromium()
    from playwright.async_api import async_playwright

    tokens = {"access_token": hass.token, "refresh_token": hass.refresh_token, "token_type": "Bearer",
              "expires_in": 1800, "hassUrl": hass.url, "clientId": hass.CLIENT_ID,
              "expires": 4_102_444_800_000}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            # the frontend keeps its tokens in localStorage: set them before its scripts run
            await page.add_init_script(f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))})")
            await page.goto(f"{hass.url}/config/devices/device/{device_id}")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            try:
                # the device page names the maker and model (inside the frontend's shadow DOM)
                await page.get_by_text("OctoPrint (Herald plugin)").first.wait_for(timeout=30_000)
                await page.get_by_text("Job Percentage").first.wait_for(timeout=60_000)
            except Exception:
                await page.screenshot(path=str(ARTIFACTS / "device-page-failed.png"))
                raise
            await asyncio.sleep(2)  # let icons and the layout settle for the picture
            await page.screenshot(path=str(ARTIFACTS / "device-page.png"))
        finally:
            await browser.close()
    _update_docs_picture()


def _check_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")


def _update_docs_picture() -> None:
    """HERALD_UPDATE_DOCS_SCREENSHOT=1: the picture in docs/home-assistant.md becomes this run's."""
    if os.environ.get("HERALD_UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "device-page.png", DOCS_PICTURE)
