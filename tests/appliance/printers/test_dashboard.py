"""The dashboard: cards built from stored printers and live status, and the event stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.accounts.models import User
from appliance.core.times import duration_text, time_ago
from appliance.printers.dashboard import build_card
from appliance.printers.live import LiveHub
from appliance.printers.models import Printer
from tests.support.printers_data import (
    idle_status,
    make_printer,
    paused_status,
    printing_status,
    three_printers,
    view_of,
)
from tests.support.sse import sse
from tests.support.users import login, make_user

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def card_for(status, *, seen=NOW - timedelta(seconds=10), zone=BERLIN, linked=True, **view):
    base = {"id": "p1", "name": "Prusa", "linked": linked, "online": True,
            "last_seen": seen.isoformat() if seen else None, "status": status}
    base.update(view)
    return build_card(base, now=NOW, zone=zone, offline_after=300, purge_after_days=10)


# --- cards from status ------------------------------------------------------------


def test_printing_card_shows_progress_time_left_and_finish_in_users_zone():
    card = card_for(printing_status(progress=42.9, left=2345))
    assert (card["state_label"], card["state_tone"]) == ("Printing", "info")
    assert card["progress_text"] == "42 %"  # floored: 99.6 % must not read as done
    # 10 s passed since the status: 2335 s left, finishing 12:38:55 UTC = 13:38 in Berlin
    assert card["time_left_text"] == "39 min"
    assert card["finish_text"] == "13:38"
    assert card["finish_at"] == "2026-11-22T12:38:55Z"
    assert card["file"] == "benchy.gcode"
    assert card["z_text"] == "12.40 mm"
    assert [t["value"] for t in card["temperatures"]] == ["210.1 / 210 °C", "60.2 / 60 °C", "31 °C"]
    assert [t["label"] for t in card["temperatures"]] == ["Tool", "Bed", "Chamber"]
    assert card["last_job"] == {"result": "completed", "label": "Completed", "tone": "ok",
                                "file": "cube.gcode", "duration": "1 h"}
    assert card["last_seen_text"] == "just now"
    assert card["online"]


def test_finish_on_another_day_names_the_weekday():
    card = card_for(printing_status(left=14 * 3600 + 10))  # 02:00 UTC the next day
    assert card["finish_text"] == "Mon 03:00"  # in Berlin
    same_day = card_for(printing_status(left=14 * 3600 + 10), zone=ZoneInfo("America/New_York"))
    assert same_day["finish_text"] == "21:00"  # still Sunday evening in New York


def test_hidden_file_and_unknown_values_are_left_out():
    status = printing_status(file=None)
    status["job"]["print_time_left"] = None
    status["temperatures"] = {"tool0": {"actual": None, "target": None}}
    card = card_for(status)
    assert card["file"] is None
    assert card["time_left_text"] is None and card["finish_at"] is None
    assert card["temperatures"] == []
    assert card["progress_text"] == "42 %"


def test_paused_job_does_not_count_down_and_has_no_finish_time():
    card = card_for(paused_status())
    assert (card["state_label"], card["state_tone"]) == ("Paused", "warn")
    assert card["time_left_text"] == "40 min" and not card["counting"] and card["finish_at"] is None
    assert [t["label"] for t in card["temperatures"]] == ["Tool 1", "Tool 2", "Bed"]
    assert card["temperatures"][1]["value"] == "180 °C, off"


def test_silence_longer_than_offline_after_reads_offline():
    card = card_for(printing_status(), seen=NOW - timedelta(seconds=301))
    assert (card["state_label"], card["state_tone"], card["online"]) == ("Offline", "bad", False)
    assert card["live_state_label"] == "Printing"  # shown as "last known"
    assert card["last_seen_text"] == "5 minutes ago"
    assert card_for(printing_status(), seen=NOW - timedelta(seconds=299))["online"]


def test_unlinked_never_seen_error_and_purge_warning():
    assert card_for(None, linked=False)["state_label"] == "Unlinked"
    assert card_for(None, seen=None)["state_label"] == "Waiting for first check-in"
    error = card_for({"state": "Offline after error: Thermal runaway", "state_id": "error"})
    assert (error["state_label"], error["state_tone"]) == ("Error", "bad")
    assert error["state_detail"] == "Offline after error: Thermal runaway"
    warned = card_for(idle_status(), seen=NOW - timedelta(days=8), purge_warned_at=NOW.isoformat())
    assert "will remove it on 24 Nov 2026" in warned["purge_warning"]
    # a printer that checked in again is no longer at risk
    assert card_for(idle_status(), purge_warned_at=NOW.isoformat())["purge_warning"] is None


def test_text_rules_match_the_browser_script():
    assert [duration_text(s) for s in (0, 44, 60, 3599, 3600, 3900, 90000)] == [
        "0 s", "44 s", "1 min", "1 h", "1 h", "1 h 5 min", "1 d 1 h"]
    assert [time_ago(NOW - timedelta(seconds=s), NOW) for s in (10, 120, 7200, 200000)] == [
        "just now", "2 minutes ago", "2 hours ago", "2 days ago"]


# --- the page ------------------------------------------------------------------


async def test_dashboard_shows_only_own_printers_with_state_in_words(app, client, clock):
    ada = await make_user()
    other = await make_user("bob@example.com")
    await three_printers(ada, clock.now())
    await make_printer(other, "Bob's secret printer", status=idle_status(), seen=clock.now())
    await User.filter(id=ada.id).update(time_zone="Europe/Berlin")
    await login(client)
    html = await (await client.get("/")).get_data(as_text=True)
    assert html.count('class="card printer-card') == 3
    assert "Bob&#39;s secret printer" not in html and "Bob's secret printer" not in html
    for words in ("Printing", "Ready", "Offline", "Last known: Paused", "benchy.gcode", "42 %",
                  "done at", "13:38", "210.1 / 210 °C", "12.40 mm", "Failed", "after 1 h 30 min"):
        assert words in html, words
    assert html.index("Ender 3") < html.index("Prusa MK4") < html.index("Voron 2.4")
    assert 'id="dashboard-empty"' in html and 'aria-labelledby="empty-title" hidden' in html


async def test_new_user_gets_exact_linking_steps(app, client, settings):
    await make_user()
    await login(client)
    html = await (await client.get("/")).get_data(as_text=True)
    assert "Link your first printer" in html
    assert "OctoPrint-Herald" in html and "Link this printer" in html
    assert f'<code id="server-url">{settings.base_url}</code>' in html
    assert 'href="/printers/new"' in html
    assert 'id="printer-cards" aria-label="Your printers" hidden' in html


async def test_visitor_is_sent_to_login(client):
    response = await client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert (await client.get("/events/dashboard")).status_code == 204


# --- live updates ------------------------------------------------------------------


@pytest.fixture
def settings(settings):
    return settings.replace(live_heartbeat=0.3)


async def test_stream_sends_snapshot_then_live_cards_of_own_printers_only(app, client, herald, clock):
    ada = await make_user()
    bob = await make_user("bob@example.com")
    prusa, ender, _ = await three_printers(ada, clock.now())
    bobs = await make_printer(bob, "Bob's", status=idle_status(), seen=clock.now())
    await login(client)
    async with sse(client, "/events/dashboard") as stream:
        snapshot = (await stream.next_of("snapshot")).json()
        assert stream.status_code == 200
        assert stream.connection.headers["Content-Type"].startswith("text/event-stream")
        assert stream.retry == 2000
        assert [c["name"] for c in snapshot["cards"]] == ["Ender 3", "Prusa MK4", "Voron 2.4"]
        for listener in herald.hooks.status_listeners:
            listener(bobs.id, view_of(bobs, printing_status(), clock.now()))
            listener(ender.id, view_of(ender, printing_status(progress=3.2, file="gear.gcode"), clock.now()))
        card = (await stream.next_of("card")).json()
        assert card["id"] == ender.id and card["state_label"] == "Printing" and card["online"]
        assert "gear.gcode" in card["html"] and "3 %" in card["html"]
        assert f'data-printer-id="{ender.id}"' in card["html"]
        # nothing about Bob's printer reached Ada's stream
        while True:
            try:
                extra = await stream.next(timeout=0.8)
            except TimeoutError:
                break
            assert bobs.id not in extra.data


async def test_stream_resyncs_added_renamed_and_removed_printers(app, client, clock):
    ada = await make_user()
    prusa = await make_printer(ada, "Prusa", status=idle_status(), seen=clock.now())
    await login(client)
    async with sse(client, "/events/dashboard") as stream:
        await stream.next_of("snapshot")
        added = await make_printer(ada, "Bambu", status=None, seen=None)
        card = (await stream.next_of("card")).json()
        assert card["id"] == added.id and card["state_label"] == "Waiting for first check-in"
        await Printer.filter(id=prusa.id).update(name="Prusa MK4S")
        card = (await stream.next_of("card")).json()
        assert card["name"] == "Prusa MK4S"
        await Printer.filter(id=added.id).delete()
        assert (await stream.next_of("remove")).json() == {"ids": [added.id]}
        assert "heartbeat" in stream.comments


async def test_stream_ends_when_the_login_ends(app, client):
    await make_user()
    csrf = await login(client)
    async with sse(client, "/events/dashboard") as stream:
        await stream.next_of("snapshot")
        other = app.test_client()
        other.cookie_jar = client.cookie_jar
        await other.post("/logout", form={"csrf_token": csrf})
        await stream.next_of("logout", timeout=5)


async def test_a_stopping_server_ends_open_streams(app, client, herald):
    await make_user()
    await login(client)
    async with sse(client, "/events/dashboard") as stream:
        await stream.next_of("snapshot")
        assert herald.part(LiveHub).subscriber_count == 1
        from appliance.app import begin_stopping

        begin_stopping(app.app)
        async with asyncio.timeout(3):  # the response ends: an empty last body chunk
            while await stream.connection.receive() != b"":
                pass
        assert herald.part(LiveHub).subscriber_count == 0


# --- the hub -----------------------------------------------------------------------------


async def test_slow_subscriber_keeps_only_the_latest_view_per_printer():
    hub = LiveHub(max_pending=2)
    subscriber = hub.subscribe(["a", "b", "c"])
    for n in range(10_000):
        hub.publish("a", {"n": n})
    hub.publish("b", {"n": "b"})
    hub.publish("c", {"n": "c"})  # over the bound: dropped, the periodic resync repairs it
    hub.publish("z", {"n": "not watched"})
    assert subscriber.pending == {"a": {"n": 9999}, "b": {"n": "b"}}
    assert subscriber.dropped == 1
    assert await subscriber.wait(0.01) == {"a": {"n": 9999}, "b": {"n": "b"}}
    assert await subscriber.wait(0.01) == {}
    hub.watch(subscriber, ["z"])
    hub.publish("a", {"n": 1})
    hub.publish("z", {"n": 2})
    assert await subscriber.wait(0.01) == {"z": {"n": 2}}
    hub.unsubscribe(subscriber)
    hub.publish("z", {"n": 3})
    assert subscriber.pending == {} and hub.subscriber_count == 0
