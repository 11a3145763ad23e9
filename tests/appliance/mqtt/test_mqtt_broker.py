"""Herald against a real mosquitto: discovery (checked with Home Assistant's own schemas), state on
every status push, device triggers, the owner's toggle, removal, a broker restart, a broker that
refuses connections, and the admin page."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from appliance import __version__
from appliance.core.models import RuntimeSetting
from appliance.core.settings import Settings
from appliance.mqtt.broker import BrokerLink
from appliance.mqtt.discovery import TRIGGERS
from appliance.mqtt.publishing import HomeAssistantPublisher
from tests.conftest import free_port
from tests.support.home_assistant import schema_problems
from tests.support.mqtt import Observer, mosquitto  # noqa: F401  (fixture)
from tests.support.printers import STATUS, bearer, event_body, make_printer
from tests.support.users import csrf_from, login, make_user


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the MQTT area keeps no SQL of its own beyond one table; PostgreSQL adds nothing here


@pytest.fixture
def settings(tmp_path, database_url, mosquitto) -> Settings:  # noqa: F811
    return Settings.build(data_dir=str(tmp_path), database_url=database_url, public_url="http://herald.test",
                          smtp_host="", mqtt_host="127.0.0.1", mqtt_port=mosquitto.port)


def node(printer) -> str:
    return "herald_" + printer.id.replace("-", "")


def state_topic(printer) -> str:
    return f"herald/{printer.id}/state"


async def put_status(client, key, body):
    response = await client.put("/api/v1/printer/status", json=body, headers=bearer(key))
    assert response.status_code == 204


async def connected(observer: Observer, herald) -> None:
    await observer.wait_for(lambda o: o.retained.get("herald/status") == "online")
    await observer.wait_for(lambda o: "herald/published" in o.retained)


async def test_an_admins_printer_appears_as_a_device_that_home_assistants_schemas_accept(client, herald, mosquitto):  # noqa: F811
    admin = await make_user(admin=True)
    async with Observer(mosquitto.port) as observer:
        printer, key = await make_printer(herald, admin, "Ender 3")
        await connected(observer, herald)
        verified = await client.post("/api/v1/printer/verify", json={"plugin_version": __version__},
                                     headers=bearer(key))
        assert verified.status_code == 200
        await put_status(client, key, {**STATUS, "temperatures": {
            **STATUS["temperatures"], "chamber": {"actual": 31.5, "target": None}}})
        configs = await observer.wait_for(
            lambda o: (c := o.configs(node(printer))) and sum("chamber" in t for t in c) == 2
            and all(p["device"].get("sw_version") for p in c.values()) and c)  # the verify's republish
        await observer.wait_for(lambda o: (o.json(state_topic(printer)) or {}).get("job_percentage") == 42.5)

    by_key = {topic.split("/")[-2]: payload for topic, payload in configs.items()}
    names = {payload.get("name") for payload in by_key.values()}
    # named as Home Assistant's OctoPrint integration names them, where they overlap
    assert {"Current State", "Job Percentage", "Estimated Finish Time", "Start Time", "Current File",
            "actual tool0 temp", "target tool0 temp", "actual bed temp", "target bed temp",
            "actual chamber temp", "target chamber temp", "Z Height", "Online", "Printing"} <= names
    assert by_key["current_state"]["device_class"] == "enum" and "printing" in by_key["current_state"]["options"]
    assert by_key["estimated_finish_time"]["device_class"] == "timestamp"
    assert by_key["start_time"]["device_class"] == "timestamp"
    assert by_key["online"]["device_class"] == "connectivity"
    device = by_key["current_state"]["device"]
    assert device["identifiers"] == [f"herald_{printer.id}"] and device["name"] == "Ender 3"
    assert device["manufacturer"] == "Herald" and device["sw_version"] == __version__  # the plugin's
    assert device["configuration_url"] == f"http://herald.test/printers/{printer.id}"
    triggers = [p for p in by_key.values() if p.get("automation_type") == "trigger"]
    assert {t["type"] for t in triggers} == set(TRIGGERS.values())
    assert {"print_done", "print_started", "print_failed", "print_paused", "print_resumed",
            "needs_attention"} <= {t["type"] for t in triggers}
    # the printer's entities need the printer to check in; Online only needs Herald
    assert {a["topic"] for a in by_key["job_percentage"]["availability"]} == {
        "herald/status", f"herald/{printer.id}/availability"}
    assert by_key["online"]["availability"] == [{"topic": "herald/status"}]
    assert not [t for t in configs if "/button/" in t]  # no buttons without both opt-ins (control.py)
    assert schema_problems(configs) == []

    state = observer.json(state_topic(printer))
    assert state["state_id"] == "printing" and state["online"] is True
    assert state["current_file"] == "benchy.gcode" and state["z_height"] == 12.4
    assert state["temperatures"]["tool0"] == {"actual": 210.1, "target": 210.0}
    # the status arrived at the fake clock's 12:00:00Z: finish = +2345 s, start = -1234 s
    assert state["estimated_finish_time"] == "2026-11-22T12:39:05Z"
    assert state["start_time"] == "2026-11-22T11:39:26Z"


async def test_every_status_push_is_published_and_print_events_fire_device_triggers(client, herald, mosquitto):  # noqa: F811
    admin = await make_user(admin=True)
    printer, key = await make_printer(herald, admin)
    async with Observer(mosquitto.port) as observer:
        await connected(observer, herald)
        for progress in (10.0, 11.0, 12.5):
            await put_status(client, key, {**STATUS, "job": {**STATUS["job"], "progress": progress}})
            await observer.wait_for(lambda o, p=progress: (o.json(state_topic(printer)) or {}).get(
                "job_percentage") == p)
        response = await client.post("/api/v1/printer/events", json=event_body(type_="print.done"),
                                     headers=bearer(key))
        assert response.status_code == 202
        topic = f"herald/{printer.id}/event/print_done"
        fired = await observer.wait_for(lambda o: [m for m in o.messages if m[0] == topic])
    assert len(fired) == 1 and fired[0][2] is False  # not retained: it fires once
    assert json.loads(fired[0][1])["event"] == "print.done"


async def test_a_users_printer_is_published_only_when_the_owner_says_so_and_removal_clears_it(
        client, herald, mosquitto):  # noqa: F811
    await make_user("admin@example.com", admin=True)
    user = await make_user()
    printer, key = await make_printer(herald, user, "Bob's printer")
    async with Observer(mosquitto.port) as observer:
        await connected(observer, herald)
        await put_status(client, key, STATUS)
        csrf = await login(client)
        page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
        assert "Not published to Home Assistant" in page  # off by default for a user who is not admin
        assert observer.configs(node(printer)) == {}

        response = await client.post(f"/printers/{printer.id}/home-assistant",
                                     form={"publish": "on", "csrf_token": csrf})
        assert response.status_code == 302
        await observer.wait_for(lambda o: len(o.configs(node(printer))) > 10)
        page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
        assert "Stop publishing to Home Assistant" in page

        bad = await client.post(f"/printers/{printer.id}/home-assistant", form={"publish": "maybe", "csrf_token": csrf})
        assert bad.status_code == 400 and "publish" in await bad.get_data(as_text=True)

        # removing the printer empties its retained configs, so Home Assistant removes the device
        response = await client.post(f"/printers/{printer.id}/remove", form={"csrf_token": csrf})
        assert response.status_code in (302, 303)
        await observer.wait_for(lambda o: o.configs(node(printer)) == {} and state_topic(printer) not in o.retained)
        await observer.wait_for(lambda o: printer.id not in json.loads(o.retained["herald/published"]))

    # a new subscriber (Home Assistant after a restart) finds nothing of it on the broker
    async with Observer(mosquitto.port) as fresh:
        await fresh.wait_for(lambda o: "herald/published" in o.retained)
        assert fresh.configs(node(printer)) == {}


async def test_after_a_broker_restart_herald_publishes_everything_again(client, herald, mosquitto):  # noqa: F811
    admin = await make_user(admin=True)
    printer, key = await make_printer(herald, admin)
    async with Observer(mosquitto.port) as observer:
        await connected(observer, herald)
        await put_status(client, key, STATUS)
        await observer.wait_for(lambda o: (o.json(state_topic(printer)) or {}).get("job_percentage") == 42.5)
        before = observer.configs(node(printer))
    mosquitto.stop()  # no persistence: every retained message is gone with it
    link = herald.part(BrokerLink)
    await put_status(client, key, {**STATUS, "job": {**STATUS["job"], "progress": 43.0}})
    await asyncio.wait_for(link.wait_for_status("retrying"), 60)  # Herald noticed the broker went
    # a status pushed while the broker is down is kept (latest wins) and published after
    await put_status(client, key, {**STATUS, "job": {**STATUS["job"], "progress": 77.0}})
    mosquitto.start()
    async with Observer(mosquitto.port) as fresh:
        await fresh.wait_for(lambda o: (o.json(state_topic(printer)) or {}).get("job_percentage") == 77.0, 120)
        await fresh.wait_for(lambda o: o.configs(node(printer)) == before)
        assert fresh.retained["herald/status"] == "online"


async def test_a_broker_that_refuses_connections_is_shown_and_does_not_stop_ingest(tmp_path, database_url, clock):
    from appliance.app import create_app

    closed_port = free_port()  # nothing listens there: every connect is refused
    settings = Settings.build(data_dir=str(tmp_path), database_url=database_url, public_url="http://herald.test",
                              mqtt_host="127.0.0.1", mqtt_port=closed_port)
    app = create_app(settings, clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        client = test_app.test_client()
        admin = await make_user(admin=True)
        printer, key = await make_printer(herald, admin)
        link = herald.part(BrokerLink)
        await asyncio.wait_for(link.wait_for_status("retrying"), 60)
        for progress in range(50):
            await put_status(client, key, {**STATUS, "job": {**STATUS["job"], "progress": float(progress)}})
        publisher = herald.part(HomeAssistantPublisher)
        # latest wins: one state message per printer waits, however many pushes came
        assert len([m for m in publisher.outbox._waiting.values() if m[0].topic.endswith("/state")]) <= 1
        await login(client)
        page = await (await client.get("/admin/home-assistant")).get_data(as_text=True)
        assert f"not connected to 127.0.0.1:{closed_port}" in page and "next try" in page


async def test_admin_saves_broker_settings_with_the_password_encrypted_at_rest(client, herald, mosquitto):  # noqa: F811
    await make_user(admin=True)
    await login(client)
    csrf = await csrf_from(client, "/admin/home-assistant")
    page = await (await client.get("/admin/home-assistant")).get_data(as_text=True)
    assert f"connected to 127.0.0.1:{mosquitto.port}" in page
    response = await client.post("/admin/home-assistant", form={
        "csrf_token": csrf, "mqtt_host": "broker.lan", "mqtt_port": "99999", "mqtt_tls": "none",
        "mqtt_username": "herald", "mqtt_password": "s3cret-mqtt", "mqtt_discovery_prefix": "homeassistant",
        "mqtt_base_topic": "herald"})
    assert response.status_code == 400 and "65535" in await response.get_data(as_text=True)
    assert await RuntimeSetting.filter(name__startswith="mqtt_").count() == 0  # all or nothing
    response = await client.post("/admin/home-assistant", form={
        "csrf_token": csrf, "mqtt_host": "127.0.0.1", "mqtt_port": str(mosquitto.port), "mqtt_tls": "none",
        "mqtt_username": "herald", "mqtt_password": "s3cret-mqtt", "mqtt_discovery_prefix": "homeassistant",
        "mqtt_base_topic": "home/herald"})
    assert response.status_code == 302
    stored = await RuntimeSetting.get(name="mqtt_password")
    assert stored.encrypted and "s3cret-mqtt" not in stored.value
    assert herald.secret_box.decrypt(stored.value) == "s3cret-mqtt"
    page = await (await client.get("/admin/home-assistant")).get_data(as_text=True)
    assert "s3cret-mqtt" not in page and "A password is stored" in page
    # the new base topic is in force after the reconnect
    async with Observer(mosquitto.port) as observer:
        await observer.wait_for(lambda o: o.retained.get("home/herald/status") == "online")


async def test_a_setting_from_the_environment_wins_and_is_shown_as_such(tmp_path, database_url, clock, mosquitto):  # noqa: F811
    from appliance.app import create_app

    base = Settings.build(data_dir=str(tmp_path), database_url=database_url, mqtt_host="127.0.0.1",
                          mqtt_port=mosquitto.port)
    settings = Settings(values=base.values, from_env=frozenset({"mqtt_host", "mqtt_password"}))
    app = create_app(settings, clock=clock)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await make_user(admin=True)
        await login(client)
        page = await (await client.get("/admin/home-assistant")).get_data(as_text=True)
        assert "Set by the environment variable HERALD_MQTT_HOST." in page
        assert "Set by the environment variable HERALD_MQTT_PASSWORD." in page


async def test_a_printer_removed_while_herald_was_stopped_is_cleared_at_the_next_start(
        tmp_path, database_url, clock, mosquitto):  # noqa: F811
    from appliance.app import create_app

    settings = Settings.build(data_dir=str(tmp_path), database_url=database_url, public_url="http://herald.test",
                              mqtt_host="127.0.0.1", mqtt_port=mosquitto.port)
    async with Observer(mosquitto.port) as observer:
        async with create_app(settings, clock=clock).test_app() as first:
            herald = first.app.extensions["herald"]
            admin = await make_user(admin=True)
            kept, _ = await make_printer(herald, admin, "Kept")
            gone, _ = await make_printer(herald, admin, "Gone")
            await observer.wait_for(lambda o: o.configs(node(kept)) and o.configs(node(gone))
                                    and gone.id in json.loads(o.retained.get("herald/published", "{}")))
        await observer.wait_for(lambda o: o.retained.get("herald/status") == "offline")  # a clean stop says so
        # removed behind Herald's back (a restore from an older backup, say)
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as db:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("DELETE FROM printers WHERE id = ?", (gone.id,))
        async with create_app(settings, clock=clock).test_app():
            await observer.wait_for(lambda o: o.configs(node(gone)) == {}
                                    and gone.id not in json.loads(o.retained.get("herald/published", "{}")))
            assert observer.configs(node(kept))  # the other printer stays
            assert observer.retained.get("herald/status") == "online"


async def test_the_control_seam_a_button_press_reaches_run_command(client, herald, mosquitto, monkeypatch):  # noqa: F811
    """Control is not built (it needs the relay tunnel): this only shows that once control.available
    says yes, a press on <base>/<printer id>/command reaches control.run_command, the one function
    whoever builds control fills in."""
    import aiomqtt

    from appliance.mqtt import control

    pressed: list[tuple[str, str]] = []

    async def run_command(_herald, printer_id: str, command: str) -> bool:
        pressed.append((printer_id, command))
        return True

    monkeypatch.setattr(control, "available", lambda _herald: True)
    monkeypatch.setattr(control, "run_command", run_command)
    link = herald.part(BrokerLink)
    link.reconfigured.set()  # connect again, now with the command subscription
    await asyncio.wait_for(link.wait_for_status("connecting"), 30)
    await asyncio.wait_for(link.wait_for_status("connected"), 30)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="button") as button:
        for _attempt in range(100):  # until the subscription is in place (the press is not retained)
            await button.publish("herald/printer-1/command", "PAUSE", qos=1)
            if pressed:
                break
            await asyncio.sleep(0.1)
    assert pressed and pressed[0] == ("printer-1", "pause")
