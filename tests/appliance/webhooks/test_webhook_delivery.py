"""Webhook delivery end to end: stored events to a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from appliance.core.herald import herald_of
from appliance.printers.models import Printer
from appliance.webhooks import targets as service
from appliance.webhooks.delivery import DeliveryWorker
from appliance.webhooks.models import Delivery, DeliveryAttempt, WebhookTarget
from tests.support.users import make_user
from tests.support.webhooks import store_event

PRINTER_DATA = {
    "state": {"text": "Printing", "flags": {"printing": True}},
    "job": {"file": {"name": "benchy.gcode", "path": "benchy.gcode"}, "estimatedPrintTime": 476},
    "progress": {"completion": 42.5, "printTimeLeft": 40},
    "currentZ": 0.2,
    "offsets": {},
}


async def make_target(herald, owner, receiver, **fields):
    data = {"name": "test", "url": receiver.url + "/hook", "events": list(service.EVENT_TYPES),
            "device_identifier": "shop", "api_secret": "s3cret", **fields}
    return await service.create_target(herald, owner, data)


async def settle(*, timeout: float = 10.0, statuses=("delivered", "failed")) -> list[Delivery]:
    """Wait until every delivery has reached one of statuses."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await Delivery.all().order_by("id")
        if rows and all(d.status in statuses for d in rows):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError([(d.id, d.status, d.last_error) for d in rows])
        await asyncio.sleep(0.05)


async def wait_status(delivery_id: int, status: str, timeout: float = 10.0) -> Delivery:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await Delivery.get(id=delivery_id)
        if row.status == status:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"delivery {delivery_id} is {row.status}: {row.last_error}")
        await asyncio.sleep(0.05)


def worker(app):
    return herald_of(app.app).part(DeliveryWorker)


async def test_json_body_headers_and_standard_webhooks_signature(app, herald, owner, printer, receiver):
    target = await make_target(herald, owner, receiver, headers=json.dumps({
        "X-Device": "@deviceIdentifier", "X-File": "file=@job.file.name", "Content-Type": "text/plain"}),
        body=json.dumps({"topic": "@topic", "message": "@message", "extra": "@extra", "z": "@currentZ",
                         "secret": "@apiSecret", "who": "@printer.name", "seq": "@sequence",
                         "line": "@job.file.name, @progress.completion% (mail me@example.com)"}))
    event = await store_event(herald, printer, "print.started", payload={"name": "benchy.gcode", "size": 242038},
                              printer_data=PRINTER_DATA)
    (got,) = await receiver.wait_for(1)
    assert got.method == "POST" and got.path == "/hook"
    body = json.loads(got.body)
    assert body == {"topic": "Print Started", "message": "Your print has started.",
                    "extra": {"name": "benchy.gcode", "size": 242038}, "z": 0.2, "secret": "s3cret",
                    "who": "Prusa MK4", "seq": event.sequence,
                    "line": "benchy.gcode, 42.5% (mail me@example.com)"}
    assert got.headers["x-device"] == "shop"
    assert got.headers["x-file"] == "file=benchy.gcode"
    assert got.headers["content-type"] == "application/json"  # a wrong one is replaced, as OctoPrint-Webhooks
    assert got.headers["herald-sequence"] == str(event.sequence)
    secret = herald.secret_box.decrypt(target.signing_secret)
    verified = Webhook(secret).verify(got.body, {k: v for k, v in got.headers.items()})
    assert verified == body
    (delivery,) = await settle()
    assert delivery.status == "delivered" and delivery.attempts == 1
    (attempt,) = await DeliveryAttempt.filter(delivery_id=delivery.id)
    assert attempt.status_code == 200 and attempt.response == "ok"


async def test_form_body_and_every_method(app, herald, owner, printer, receiver):
    body = json.dumps({"topic": "@topic", "job": "@job.file", "n": "@currentZ"})
    for method in service.METHODS:
        await make_target(herald, owner, receiver, name=method, method=method, content_type="form",
                          url=receiver.url + f"/{method.lower()}/@printer.name", body=body)
    await store_event(herald, printer, "print.done", printer_data=PRINTER_DATA)
    got = await receiver.wait_for(len(service.METHODS))
    by_method = {r.method: r for r in got}
    assert set(by_method) == set(service.METHODS)
    assert by_method["GET"].path == "/get/Prusa MK4"
    assert by_method["GET"].query == {"topic": "Print Done", "job": json.dumps(PRINTER_DATA["job"]["file"]), "n": "0.2"}
    assert by_method["GET"].body == b""
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        request = by_method[method]
        assert request.content_type == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assert form["topic"] == "Print Done" and form["n"] == "0.2"


async def test_oauth_pre_request_token_is_cached(app, herald, owner, printer, receiver):
    def respond(request, received):
        if received.path == "/token":
            return web.json_response({"access_token": f"tok{len(receiver.requests)}", "expires_in": 3600})
        return None

    receiver.respond = respond
    await make_target(herald, owner, receiver, oauth_enabled=True, oauth_url=receiver.url + "/token",
                      oauth_body=json.dumps({"client_id": "herald", "client_secret": "shh"}),
                      headers=json.dumps({"Authorization": "Bearer @access_token"}),
                      body=json.dumps({"topic": "@topic", "token": "@access_token"}))
    for _ in range(3):
        await store_event(herald, printer, "print.paused")
    hooks = await receiver.wait_for(3, path="/hook")
    tokens = [r for r in receiver.requests if r.path == "/token"]
    assert len(tokens) == 1, "the token must be fetched once and cached until expires_in"
    assert json.loads(tokens[0].body) == {"client_id": "herald", "client_secret": "shh"}
    assert {r.headers["authorization"] for r in hooks} == {"Bearer tok1"}
    assert {json.loads(r.body)["token"] for r in hooks} == {"tok1"}
    herald.clock.advance(3600)  # expired: fetched again
    await store_event(herald, printer, "print.resumed")
    await receiver.wait_for(4, path="/hook")
    assert len([r for r in receiver.requests if r.path == "/token"]) == 2


async def test_snapshot_is_sent_as_multipart(app, herald, owner, printer, receiver, settings):
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    (settings.data_path / "snapshots").mkdir(parents=True, exist_ok=True)
    (settings.data_path / "snapshots" / "e1.jpg").write_bytes(jpeg)
    await make_target(herald, owner, receiver, body=json.dumps({"topic": "@topic", "snap": "@snapshot"}))
    await store_event(herald, printer, "print.done", snapshot_path="snapshots/e1.jpg")
    await store_event(herald, printer, "print.done")  # no snapshot: still multipart, the key left out
    first, second = await receiver.wait_for(2)
    assert first.content_type == "multipart/form-data"
    reader_body = first.body
    assert jpeg in reader_body and b'name="snap"; filename="snapshot.jpg"' in reader_body
    assert b'name="topic"\r\n\r\nPrint Done' in reader_body
    assert second.content_type == "multipart/form-data"
    assert b'name="topic"\r\n\r\nPrint Done' in second.body and b'name="snap"' not in second.body


async def test_retry_after_500_sends_same_id_and_body(app, herald, owner, printer, receiver):
    answers = iter([web.Response(status=500, text="boom")])
    receiver.respond = lambda request, received: next(answers, None)
    await make_target(herald, owner, receiver)
    await store_event(herald, printer, "print.failed")
    await receiver.wait_for(1)
    (delivery,) = await settle(statuses=("pending",))
    await asyncio.sleep(0.2)
    delivery = await Delivery.get(id=delivery.id)
    assert delivery.attempts == 1 and delivery.last_error == "HTTP 500"
    delay = (delivery.next_attempt_at - herald.clock.now()).total_seconds()
    assert 4 <= delay <= 6  # 5 s ± 20%
    herald.clock.advance(6)
    worker(app).notify()
    first, second = await receiver.wait_for(2)
    assert first.webhook_id == second.webhook_id and first.body == second.body
    delivery = await wait_status(delivery.id, "delivered")
    assert delivery.attempts == 2
    log = await DeliveryAttempt.filter(delivery_id=delivery.id).order_by("id")
    assert [a.status_code for a in log] == [500, 200] and log[0].response == "boom"


@pytest.fixture
def settings(settings):
    # The timeout test's timeout: short, so it stays quick, yet long enough that the quick
    # second answer never misses it on a busy machine (the first one never comes: it is held).
    return settings.replace(webhook_timeout=3, webhook_lease=5)


async def test_retry_after_timeout(app, herald, owner, printer, receiver):
    slow = {"left": 1}
    never = asyncio.Event()  # the first answer is held until the test ends: a timeout for sure

    async def respond(request, received):
        if slow["left"]:
            slow["left"] -= 1
            await never.wait()
        return None

    receiver.respond = respond
    await make_target(herald, owner, receiver)
    await store_event(herald, printer, "printer.error", payload={"error": "thermal runaway"})
    await receiver.wait_for(1, timeout=60)
    # The timed-out attempt is recorded (polled: when it lands depends on the machine's load).
    (delivery,) = await settle(statuses=("pending",), timeout=60)
    for _ in range(1200):
        delivery = await Delivery.get(id=delivery.id)
        if delivery.attempts:
            break
        await asyncio.sleep(0.05)
    assert delivery.attempts == 1 and "no answer within 3 s" in delivery.last_error
    herald.clock.advance(7)
    worker(app).notify()
    await wait_status(delivery.id, "delivered", timeout=60)
    second = (await receiver.wait_for(2, timeout=60))[1]
    never.set()
    assert json.loads(second.body)["message"] == "There was an error."  # OctoPrint-Webhooks' text; the error is in @extra


async def test_retry_after_header_is_honoured(app, herald, owner, printer, receiver):
    answers = iter([web.Response(status=429, headers={"Retry-After": "120"})])
    receiver.respond = lambda request, received: next(answers, None)
    await make_target(herald, owner, receiver)
    await store_event(herald, printer, "print.done")
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    (delivery,) = await Delivery.all()
    assert delivery.status == "pending"
    assert (delivery.next_attempt_at - herald.clock.now()).total_seconds() == pytest.approx(120, abs=1)
    herald.clock.advance(60)  # the plain schedule (5 s) would have retried by now
    worker(app).notify()
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1
    herald.clock.advance(61)
    worker(app).notify()
    await wait_status(delivery.id, "delivered")


async def test_410_disables_the_target_and_tells_the_user(app, client, herald, owner, printer, receiver):
    receiver.respond = lambda request, received: web.Response(status=410)
    target = await make_target(herald, owner, receiver)
    await store_event(herald, printer, "print.done")
    (delivery,) = await settle()
    assert delivery.status == "failed"
    target = await WebhookTarget.get(id=target.id)
    assert not target.enabled and "410" in target.disabled_reason
    await store_event(herald, printer, "print.started")  # a disabled target gets no deliveries
    assert await Delivery.all().count() == 1
    from tests.support.users import login

    await login(client, "admin@example.com")
    page = await (await client.get("/")).get_data(as_text=True)
    assert "was disabled" in page and "410" in page


async def test_redirect_is_not_followed(app, herald, owner, printer, receiver):
    def respond(request, received):
        if received.path == "/hook":
            return web.Response(status=302, headers={"Location": receiver.url + "/elsewhere"})
        return None

    receiver.respond = respond
    await make_target(herald, owner, receiver)
    await store_event(herald, printer, "print.done")
    await receiver.wait_for(1)
    (delivery,) = await settle(statuses=("pending",))
    await asyncio.sleep(0.3)
    delivery = await Delivery.get(id=delivery.id)
    assert "not followed" in delivery.last_error and delivery.attempts == 1
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_ordering_per_target_and_progress_steps(app, herald, owner, printer, receiver):
    await make_target(herald, owner, receiver, name="all", url=receiver.url + "/a",
                      events=["print.started", "print.progress", "print.done"], progress_step=1)
    await make_target(herald, owner, receiver, name="quarters", url=receiver.url + "/q",
                      events=["print.progress"], progress_step=25,
                      body=json.dumps({"m": "@percentCompleteMilestone", "msg": "@message"}))
    await store_event(herald, printer, "print.started")
    for percent in range(1, 100):
        if percent in (49, 50):
            continue  # a lost report: 51 still fires the 50 % milestone
        await store_event(herald, printer, "print.progress", payload={"progress": percent})
    await store_event(herald, printer, "print.done")
    quarters = await receiver.wait_for(3, path="/q")
    assert [json.loads(r.body)["m"] for r in quarters] == [25, 50, 75]
    assert json.loads(quarters[1].body)["msg"] == "Your print is 50 % complete."
    everything = await receiver.wait_for(99, path="/a")
    sequences = [int(r.headers["herald-sequence"]) for r in everything]
    assert sequences == sorted(sequences) and len(set(sequences)) == 99


async def test_rotation_signs_with_old_and_new_secret(app, herald, owner, printer, receiver):
    target = await make_target(herald, owner, receiver)
    old = herald.secret_box.decrypt(target.signing_secret)
    new = await service.rotate_secret(herald, target)
    await store_event(herald, printer, "print.done")
    (got,) = await receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(got.body, dict(got.headers))
    herald.clock.advance(25 * 3600)  # the overlap ended: only the new secret signs
    await store_event(herald, printer, "print.done")
    second = (await receiver.wait_for(2))[1]
    assert len(second.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(second.body, dict(second.headers))


async def test_private_addresses_refused_for_users_who_are_not_admins(app, herald, printer, receiver):
    from appliance.core.errors import Unprocessable
    from appliance.core.runtime_settings import set_runtime

    user = await make_user("bob@example.com")
    with pytest.raises(Unprocessable) as caught:
        await make_target(herald, user, receiver)
    assert "private" in caught.value.message
    # A name is not resolved on save; the address actually connected to is checked at delivery.
    target = await make_target(herald, user, receiver, url="http://hooks.example.com/")
    await WebhookTarget.filter(id=target.id).update(url=f"http://localhost:{receiver.port}/")
    other = await Printer.create(id=str(uuid.uuid4()), owner=user, name="Bob's")
    await store_event(herald, other, "print.done")
    await asyncio.sleep(0.5)
    (delivery,) = await Delivery.all()
    assert delivery.attempts == 1 and "private" in delivery.last_error
    assert receiver.requests == []
    await set_runtime(herald, "webhook_allow_private", "true")  # an admin allows the LAN
    herald.clock.advance(10)
    worker(app).notify()
    await wait_status(delivery.id, "delivered")


async def test_api_test_send_resend_and_log(app, client, herald, owner, printer, receiver):
    from tests.support.users import login

    csrf = await login(client, "admin@example.com")
    headers = {"X-CSRF-Token": csrf}
    response = await client.post("/api/v1/webhooks", json={"name": "x", "url": "ftp://nope"}, headers=headers)
    assert response.status_code == 422 and "http" in (await response.get_json())["message"]
    response = await client.post("/api/v1/webhooks", headers=headers, json={
        "preset": "slack", "name": "Slack", "url": receiver.url + "/slack", "body": '{"text": "@nope"}'})
    problem = await response.get_json()
    assert response.status_code == 422 and problem["details"][0]["field"] == "body"
    assert problem["details"][0]["line"] == 1 and problem["details"][0]["column"] == 11
    response = await client.post("/api/v1/webhooks", headers=headers, json={
        "preset": "slack", "name": "Slack", "url": receiver.url + "/slack"})
    assert response.status_code == 201, await response.get_data(as_text=True)
    target = await response.get_json()
    assert target["signing_secret"].startswith("whsec_")
    response = await client.post(f"/api/v1/webhooks/{target['id']}/test", json={"type": "print.progress"},
                                 headers=headers)
    assert response.status_code == 202
    test_delivery = await response.get_json()
    (got,) = await receiver.wait_for(1)
    assert json.loads(got.body) == {"text": "*Prusa MK4* Print Progress: Your print is 50 % complete."}
    await wait_status(test_delivery["id"], "delivered")
    detail = await (await client.get(f"/api/v1/webhooks/deliveries/{test_delivery['id']}")).get_json()
    assert detail["attempt_log"][0]["status_code"] == 200
    response = await client.post(f"/api/v1/webhooks/deliveries/{test_delivery['id']}/resend", headers=headers)
    assert response.status_code == 202
    again = await response.get_json()
    second = (await receiver.wait_for(2))[1]
    assert second.webhook_id == got.webhook_id and second.body == got.body
    await wait_status(again["id"], "delivered")
    listing = await (await client.get(f"/api/v1/webhooks/{target['id']}/deliveries")).get_json()
    assert [d["id"] for d in listing["deliveries"]] == [again["id"], test_delivery["id"]]
    # Without the CSRF token a cookie request is refused; another user's webhook is a 404.
    assert (await client.post(f"/api/v1/webhooks/{target['id']}/test", json={"type": "print.done"})).status_code == 403
    await make_user("eve@example.com")
    eve = app.test_client()
    await login(eve, "eve@example.com")
    assert (await eve.get(f"/api/v1/webhooks/{target['id']}")).status_code == 404


async def test_bearer_token_needs_the_webhooks_scope(app, client, owner):
    from appliance.accounts.models import AccessToken
    from appliance.core.secrets import new_token, token_hash

    good, narrow = new_token("hat_"), new_token("hat_")
    await AccessToken.create(token_hash=token_hash(good), user=owner, scope="printers:read webhooks")
    await AccessToken.create(token_hash=token_hash(narrow), user=owner, scope="printers:read")
    response = await client.post("/api/v1/webhooks", headers={"Authorization": f"Bearer {good}"},
                                 json={"name": "n", "url": "https://example.com/hook"})
    assert response.status_code == 201
    response = await client.get("/api/v1/webhooks", headers={"Authorization": f"Bearer {narrow}"})
    assert response.status_code == 403


async def test_pages_show_template_errors_next_to_the_field(app, client, owner, printer, receiver):
    from tests.support.users import login

    csrf = await login(client, "admin@example.com")
    page = await (await client.get("/webhooks/new?preset=discord")).get_data(as_text=True)
    assert "**@printer.name**" in page and "discord.com/api/webhooks" in page
    response = await client.post("/webhooks/new", form={
        "csrf_token": csrf, "name": "D", "url": receiver.url + "/d", "method": "POST", "content_type": "json",
        "headers": "{}", "body": '{"content": "@topik"}', "events": "print.done", "progress_step": "10"})
    assert response.status_code == 422
    page = await response.get_data(as_text=True)
    assert 'id="body-error"' in page and "unknown parameter @topik (write @@ for a literal @) (line 1, column 14)" in page
    response = await client.post("/webhooks/new", form={
        "csrf_token": csrf, "name": "D", "url": receiver.url + "/d", "method": "POST", "content_type": "json",
        "headers": "{}", "body": '{"content": "@topic"}', "events": "print.done", "progress_step": "10",
        "enabled": "on"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.endswith("?done=created")
    target_id = location.split("?")[0].rsplit("/", 1)[1]
    assert "The webhook was saved." in await (await client.get(location)).get_data(as_text=True)
    response = await client.post(f"/webhooks/{target_id}/test", form={"csrf_token": csrf, "type": "print.done"})
    assert response.status_code == 302
    await receiver.wait_for(1)
    await settle()
    page = await (await client.get(response.headers["Location"])).get_data(as_text=True)
    assert "delivered" in page and "200" in page
    log_page = await (await client.get(f"/webhooks/{target_id}/deliveries")).get_data(as_text=True)
    assert "Print Done" in log_page


async def test_five_days_of_failure_disable_the_target_with_mail(app, client, herald, owner, printer, receiver):
    from appliance.core.runtime_settings import set_runtime
    from tests.support.smtp import SMTPServer

    receiver.respond = lambda request, received: web.Response(status=500)
    target = await make_target(herald, owner, receiver)
    with SMTPServer() as smtp:
        for name, value in smtp.settings().items():
            await set_runtime(herald, name, value)
        await store_event(herald, printer, "print.done")
        await receiver.wait_for(1)
        await asyncio.sleep(0.3)
        target = await WebhookTarget.get(id=target.id)
        assert target.enabled and target.failing_since == herald.clock.now()
        herald.clock.advance(5 * 86400 - 60)  # almost five days: still enabled
        await store_event(herald, printer, "print.done")
        await receiver.wait_for(2)
        await asyncio.sleep(0.3)
        assert (await WebhookTarget.get(id=target.id)).enabled
        herald.clock.advance(120)
        await store_event(herald, printer, "print.done")
        await receiver.wait_for(3)
        (message,) = await smtp.wait_for(1)
    target = await WebhookTarget.get(id=target.id)
    assert not target.enabled and "failed since" in target.disabled_reason
    assert message["To"] == "admin@example.com" and "disabled" in message["Subject"]
    # Enabling it again clears the notice.
    await service.set_enabled(target, True)
    assert await service.notices(owner) == []


async def test_purge_removes_old_deliveries_and_attempts(app, herald, owner, printer, receiver):
    from appliance.webhooks.delivery import purge

    await make_target(herald, owner, receiver)
    await store_event(herald, printer, "print.done")
    await settle()
    herald.clock.advance(29 * 86400)
    await store_event(herald, printer, "print.done")
    await settle()
    herald.clock.advance(2 * 86400)
    assert await purge(herald) == 1
    assert await Delivery.all().count() == 1 and await DeliveryAttempt.all().count() == 1


async def test_the_purge_runs_in_the_background_under_a_lease(app, herald):
    """One process purges per hour, whichever takes the lease (several share PostgreSQL)."""
    from appliance.core.leases import claim_due
    from appliance.core.models import Lease

    started = herald.clock.now()
    for _ in range(100):  # the app's purge task claims the lease and runs once at start
        lease = await Lease.get_or_none(name="webhook-purge")
        if lease is not None and lease.last_run_at is not None and lease.expires_at <= herald.clock.now():
            break
        await asyncio.sleep(0.05)
    assert lease is not None and lease.last_run_at == started
    # another process asking within the hour finds it done; after the hour, it may take it
    assert not await claim_due("webhook-purge", "another-process", every=3600, hold_for=300, clock=herald.clock)
    herald.clock.advance(3601)
    assert await claim_due("webhook-purge", "another-process", every=3600, hold_for=300, clock=herald.clock)


async def test_stopping_the_worker_releases_its_claims(app, herald, owner, printer, receiver):
    from appliance.webhooks.delivery import DeliveryWorker

    # Stop the app's own worker, so the one under test holds every claim.
    app_worker = herald.tasks._tasks["webhook-delivery"]
    app_worker.cancel()
    await asyncio.gather(app_worker, return_exceptions=True)
    hold = asyncio.Event()

    async def stall(request, received):
        await hold.wait()

    receiver.respond = stall
    await make_target(herald, owner, receiver)
    for _ in range(5):
        await store_event(herald, printer, "print.done")
    first = DeliveryWorker(herald)
    task = asyncio.create_task(first.run())
    await receiver.wait_for(1)
    assert await Delivery.filter(status="in_flight", claimed_by=first.worker_id).count() == 5
    task.cancel()  # what the app does at shutdown
    await asyncio.gather(task, return_exceptions=True)
    await first.close()
    rows = await Delivery.all()
    # Back in the queue, unclaimed; only the stalled one may have timed out (one attempt).
    assert {(d.status, d.claimed_by) for d in rows} == {("pending", None)}
    assert sorted(d.attempts for d in rows) in ([0, 0, 0, 0, 0], [0, 0, 0, 0, 1])
    hold.set()
    herald.clock.advance(10)
    receiver.respond = None
    second = DeliveryWorker(herald)
    task = asyncio.create_task(second.run())
    try:
        await settle()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await second.close()


async def test_through_the_events_api_with_snapshot_kept_until_delivered(app, client, herald, owner, receiver,
                                                                           settings):
    from appliance.printers.models import Event
    from tests.appliance.printers.test_events import JPEG, multipart
    from tests.support.printers import bearer, event_body, make_printer

    api_printer, key = await make_printer(herald, owner, "API printer")
    await make_target(herald, owner, receiver, body=json.dumps({"file": "@extra.name", "img": "@snapshot"}))
    hold = asyncio.Event()

    async def wait(request, received):
        await hold.wait()

    receiver.respond = wait
    body, ctype = multipart([("event", "", json.dumps(event_body("e-1")).encode(), "application/json"),
                             ("snapshot", "snap.jpg", JPEG, "image/jpeg")])
    response = await client.post("/api/v1/printer/events", data=body,
                                 headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 202
    (delivery,) = await Delivery.all()  # it existed before the endpoint answered
    event = await Event.get(printer_id=api_printer.id, event_id="e-1")
    snapshot = settings.data_path / event.snapshot_path
    assert delivery.snapshot_path == event.snapshot_path and snapshot.exists()
    # A repeated id is accepted and not enqueued twice.
    response = await client.post("/api/v1/printer/events", json=event_body("e-1"), headers=bearer(key))
    assert response.status_code == 202 and await Delivery.all().count() == 1
    (got,) = await receiver.wait_for(1)
    assert snapshot.exists()  # still needed while the delivery is in flight
    hold.set()
    await settle()
    assert JPEG in got.body and b'name="file"\r\n\r\nbenchy.gcode' in got.body
    await asyncio.sleep(0.2)
    assert not snapshot.exists()  # gone once the delivery finished
    assert (await Event.get(id=event.id)).snapshot_path is None
