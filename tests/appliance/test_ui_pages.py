"""Page behaviour a newcomer noticed: confirmations before destructive actions, times in the
user's zone, honest wording (never seen, no mail server), done notices, HTML error pages."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from appliance.accounts.models import User
from appliance.core.secrets import token_hash
from appliance.core.settings import Settings
from appliance.core.templating import as_utc, format_local, is_loopback
from appliance.printers.chart import build_chart, time_ticks
from appliance.printers.models import Job, Printer, StatusSample
from appliance.webhooks import enqueue as webhook_enqueue
from appliance.webhooks import targets as webhook_service
from appliance.webhooks.models import WebhookTarget
from tests.support.printers_data import idle_status, make_printer
from tests.support.users import login, make_user

_KEY = re.compile(r'id="printer-key" class="code" readonly value="([^"]+)"')


async def _text(response) -> str:
    return await response.get_data(as_text=True)


async def _berlin(email: str = "ada@example.com") -> User:
    user = await User.get(email=email)
    user.time_zone = "Europe/Berlin"
    await user.save()
    return user


# --- 1. confirm before deleting a user or replacing a printer key ------------------------


async def test_deleting_a_user_asks_first_and_says_what_goes(app, client):
    await make_user("admin@example.com", admin=True)
    bea = await make_user("bea@example.com")
    await make_printer(bea, "Bea's Prusa", status=None, seen=None)
    csrf = await login(client, "admin@example.com")
    users = await _text(await client.get("/admin/users"))
    assert f'action="/admin/users/{bea.id}/delete"' not in users  # no one-click delete any more
    assert f'href="/admin/users/{bea.id}/delete"' in users

    page = await client.get(f"/admin/users/{bea.id}/delete")
    html = await _text(page)
    assert page.status_code == 200
    assert "Delete bea@example.com?" in html and "1 printer " in html and "cannot be undone" in html
    assert f'action="/admin/users/{bea.id}/delete"' in html and 'href="/admin/users"' in html
    assert await User.filter(id=bea.id).exists()  # looking at the question deletes nothing

    response = await client.post(f"/admin/users/{bea.id}/delete", form={"csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users?done=deleted"
    assert not await User.filter(id=bea.id).exists()
    assert "The user was deleted." in await _text(await client.get("/admin/users?done=deleted"))
    assert (await client.get("/admin/users/999/delete")).status_code == 404


async def test_a_new_printer_key_is_made_only_after_confirming(app, client):
    await make_user()
    csrf = await login(client)
    created = await client.post("/printers/new", form={"csrf_token": csrf, "name": "Bambu"})
    key = _KEY.search(await _text(created)).group(1)
    printer = await Printer.get(name="Bambu")

    detail = await _text(await client.get(f"/printers/{printer.id}"))
    assert f'action="/printers/{printer.id}/rotate"' not in detail
    assert f'href="/printers/{printer.id}/rotate"' in detail and "Make a new key…" in detail
    question = await _text(await client.get(f"/printers/{printer.id}/rotate"))
    assert "current key stops working at once" in question and "OctoPrint" in question
    assert f'action="/printers/{printer.id}/rotate"' in question
    await printer.refresh_from_db()
    assert printer.key_hash == token_hash(key)  # the question changed nothing

    response = await client.post(f"/printers/{printer.id}/rotate", form={"csrf_token": csrf})
    assert "The old key no longer works" in await _text(response)
    await printer.refresh_from_db()
    assert printer.key_hash != token_hash(key)


# --- 2. delivery detail shows text as written ----------------------------------------------


async def test_delivery_page_shows_emoji_and_umlauts_unescaped(app, client, herald):
    owner = await make_user()
    await make_printer(owner, "Prusa MK4 🖨️ Drücker", status=idle_status(), seen=herald.clock.now())
    await login(client)
    target = await webhook_service.create_target(herald, owner, {
        "name": "Hook", "url": "https://example.com/hook", "events": ["print.done"],
        "body": '{"text": "@printer.name fertig"}'})
    delivery = await webhook_enqueue.enqueue_test(herald, owner, target, "print.done")
    html = await _text(await client.get(f"/webhooks/deliveries/{delivery.id}"))
    assert "Prusa MK4 🖨️ Drücker fertig" in html
    assert "\\ud83d" not in html and "\\u00fc" not in html


# --- 3. times in the user's zone, relative where the dashboard is ---------------------------


def test_localtime_formats_in_a_zone_and_accepts_iso_text():
    berlin = ZoneInfo("Europe/Berlin")
    assert format_local("2026-11-22T06:34:15.445060Z", berlin) == "22 Nov 2026, 07:34 CET"
    assert format_local(datetime(2026, 7, 1, 12, 0), berlin, "time") == "14:00"  # naive is UTC; summer time
    assert format_local(None, berlin) == ""
    assert as_utc("not a time") is None


async def test_printer_pages_show_local_times_and_last_seen_as_age(app, client, herald, clock):
    owner = await make_user()
    await login(client)
    await _berlin()
    printer = await make_printer(owner, "Prusa", status=idle_status(), seen=clock.now() - timedelta(minutes=3))
    await Job.create(printer=printer, file="cube.gcode", started_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
                     ended_at=datetime(2026, 11, 22, 10, 30, tzinfo=UTC), duration=5400, result="completed")
    detail = await _text(await client.get(f"/printers/{printer.id}"))
    assert "3 minutes ago" in detail and "2026-11-22T11:57:00" in detail  # the words, and the ISO for <time>
    assert "last seen 2026" not in detail
    assert "22 Nov 2026, 10:00 CET" in detail and "22 Nov 2026, 11:30 CET" in detail  # 09:00/10:30 UTC
    assert "(UTC)" not in detail and "Europe/Berlin" in detail
    listing = await _text(await client.get("/printers"))
    assert "3 minutes ago" in listing and "(UTC)" not in listing


async def test_delivery_log_times_are_in_the_users_zone(app, client, herald, clock):
    owner = await make_user()
    await login(client)
    await _berlin()
    target = await webhook_service.create_target(herald, owner, {
        "name": "Hook", "url": "https://example.com/hook", "events": ["print.done"]})
    await webhook_enqueue.enqueue_test(herald, owner, target, "print.done")
    log_page = await _text(await client.get(f"/webhooks/{target.id}/deliveries"))
    assert ">22 Nov 2026, 13:00:00 CET<" in log_page  # the clock says 12:00 UTC
    assert "2026-11-22 12:00:00" not in log_page and "(UTC)" not in log_page


def test_chart_ticks_are_round_times_at_one_step_in_the_users_zone():
    start = datetime(2026, 11, 22, 5, 34, 40, tzinfo=UTC)
    end = datetime(2026, 11, 22, 5, 40, 10, tzinfo=UTC)
    labels = [label for _moment, label in time_ticks(start, end, ZoneInfo("Europe/Berlin"))]
    assert labels == ["06:35", "06:36", "06:37", "06:38", "06:39", "06:40"]
    moments = [m for m, _ in time_ticks(start, start + timedelta(hours=2, minutes=3))]
    steps = {b - a for a, b in zip(moments, moments[1:], strict=False)}
    assert steps == {timedelta(minutes=30)} and all(m.minute % 30 == 0 and m.second == 0 for m in moments)


def test_chart_needs_two_samples_and_labels_in_the_given_zone():
    def sample(minute: int) -> StatusSample:
        return StatusSample(taken_at=datetime(2026, 11, 22, 12, minute, tzinfo=UTC),
                            temperatures={"tool0": {"actual": 200.0, "target": 200.0}}, progress=None)

    assert build_chart([sample(0)]) is None
    chart = build_chart([sample(0), sample(10)], ZoneInfo("Europe/Berlin"))
    assert [label for _x, label in chart.x_ticks] == ["13:00", "13:02", "13:04", "13:06", "13:08", "13:10"]
    assert "13:00 to 13:10 CET" in chart.summary


def test_chart_draws_each_jobs_progress_as_its_own_span():
    def sample(minute: int, progress: float | None) -> StatusSample:
        return StatusSample(taken_at=datetime(2026, 11, 22, 12, minute, tzinfo=UTC),
                            temperatures={"tool0": {"actual": 200.0}}, progress=progress)

    # Job 1 runs to 100 %, the printer idles (no progress sampled), job 2 starts; job 3 follows
    # job 2 with no idle sample between them (progress falls back: a new job).
    samples = [sample(0, 0.0), sample(1, 50.0), sample(2, 100.0), sample(3, None), sample(4, None),
               sample(5, 0.0), sample(6, 40.0), sample(7, 80.0), sample(8, 3.0), sample(9, 20.0)]
    chart = build_chart(samples)
    assert [len(span.points.split()) for span in chart.progress_spans] == [3, 3, 2]
    assert "3 jobs" in chart.summary
    # No segment goes down: each span only rises (SVG y grows downwards).
    for span in chart.progress_spans:
        ys = [float(point.split(",")[1]) for point in span.points.split()]
        assert ys == sorted(ys, reverse=True)


async def test_one_sample_says_not_enough_data(app, client, clock):
    owner = await make_user()
    await login(client)
    printer = await make_printer(owner, "Prusa", status=idle_status(), seen=clock.now())
    await StatusSample.create(printer=printer, taken_at=clock.now(), temperatures={"bed": {"actual": 60}})
    html = await _text(await client.get(f"/printers/{printer.id}"))
    assert "Not enough data for a chart yet" in html and "No samples yet" not in html


# --- 5. pages answer HTML errors ---------------------------------------------------------------


async def test_page_routes_answer_html_errors_and_machine_routes_json(app, client):
    await make_user("admin@example.com", admin=True)
    await make_user()
    await login(client)
    for path in ("/alexa/setup", "/alexa/skill-package.zip", "/admin/users"):
        response = await client.get(path)
        assert response.status_code == 403 and response.mimetype == "text/html", path
        assert "Only an admin can do this." in await _text(response)
    # What programs call keeps its JSON errors.
    response = await client.post("/alexa", data=b"{}")
    assert response.status_code == 400 and response.mimetype == "application/json"
    response = await client.get("/api/v1/webhooks/nope")
    assert response.status_code == 404 and response.mimetype == "application/json"
    response = await client.get("/admin/users", headers={"Accept": "application/json"})
    assert response.status_code == 403 and (await response.get_json())["error"] == "forbidden"


# --- 6. never seen is not offline ------------------------------------------------------------


async def test_a_printer_that_never_checked_in_is_waiting_not_offline(app, client, clock):
    owner = await make_user()
    await login(client)
    fresh = await make_printer(owner, "Fresh", status=None, seen=None)
    silent = await make_printer(owner, "Silent", status=None, seen=clock.now() - timedelta(days=1))
    silent.online = False
    await silent.save()
    listing = await _text(await client.get("/printers"))
    fresh_row = listing[listing.index(">Fresh<"):listing.index(">Silent<")]
    assert "waiting for first check-in" in fresh_row and "offline" not in fresh_row
    assert "offline" in listing[listing.index(">Silent<"):]
    detail = await _text(await client.get(f"/printers/{fresh.id}"))
    assert "waiting for first check-in" in detail and "offline" not in detail


# --- 9. honest mail wording without an SMTP server ----------------------------------------------


async def test_reset_page_and_test_mail_say_mail_went_to_the_log(app, client, caplog):
    caplog.set_level(logging.INFO)
    await make_user("admin@example.com", admin=True)
    csrf = await login(client, "admin@example.com")
    response = await client.post("/admin/mail/test", form={"csrf_token": csrf})
    assert "written to Herald's log" in await _text(response)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "This is a test mail from Herald" in logged and "Mail works" not in logged
    assert "written to this log and not sent" in logged

    visitor = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', await _text(await visitor.get("/reset"))).group(1)
    html = await _text(await visitor.post("/reset", form={"csrf_token": token, "email": "admin@example.com"}))
    assert "cannot send mail yet" in html and "written to its log" in html and "on its way" not in html


# --- 10. done notices -------------------------------------------------------------------------


async def test_rename_remove_webhook_save_and_logout_say_they_are_done(app, client, herald):
    owner = await make_user()
    csrf = await login(client)
    printer = await make_printer(owner, "Prusa", status=None, seen=None)
    response = await client.post(f"/printers/{printer.id}/rename", form={"csrf_token": csrf, "name": "Prusa XL"})
    assert response.headers["Location"] == f"/printers/{printer.id}?done=renamed"
    assert "The printer was renamed." in await _text(await client.get(response.headers["Location"]))
    response = await client.post(f"/printers/{printer.id}/remove", form={"csrf_token": csrf})
    assert response.headers["Location"] == "/printers?done=removed"
    assert "The printer was removed." in await _text(await client.get(response.headers["Location"]))

    target = await webhook_service.create_target(herald, owner, {
        "name": "Hook", "url": "https://example.com/hook", "events": ["print.done"]})
    form = {"csrf_token": csrf, "name": "Hook 2", "url": "https://example.com/hook", "method": "POST",
            "content_type": "json", "headers": "{}", "body": "{}", "events": "print.done", "progress_step": "10"}
    response = await client.post(f"/webhooks/{target.id}", form=form)
    assert response.headers["Location"] == f"/webhooks/{target.id}?done=saved"
    assert "Your changes were saved." in await _text(await client.get(response.headers["Location"]))
    assert (await WebhookTarget.get(id=target.id)).name == "Hook 2"
    response = await client.post(f"/webhooks/{target.id}/delete", form={"csrf_token": csrf})
    assert "The webhook was deleted." in await _text(await client.get(response.headers["Location"]))

    response = await client.post("/logout", form={"csrf_token": csrf})
    assert response.headers["Location"] == "/login?done=logout"
    assert "You are logged out." in await _text(await client.get("/login?done=logout"))


# --- 12. a loopback address cannot be reached from OctoPrint elsewhere --------------------------


def test_is_loopback():
    assert is_loopback("http://127.0.0.1:8765") and is_loopback("http://localhost:8765/")
    assert is_loopback("http://[::1]:8765")
    assert not is_loopback("http://192.168.1.20:8765") and not is_loopback("https://herald.example.com")


async def test_empty_dashboard_warns_about_a_loopback_address(app, client, herald, settings):
    await make_user()
    await login(client)
    html = await _text(await client.get("/"))
    assert "http://herald.test" in html and "loopback-warning" not in html
    herald.settings = Settings(values={**settings.values, "public_url": "http://127.0.0.1:8765"})
    html = await _text(await client.get("/"))
    assert "http://127.0.0.1:8765" in html and 'id="loopback-warning"' in html
    assert "HERALD_HOST=0.0.0.0" in html and "HERALD_PUBLIC_URL" in html
