"""The probe's webhook findings: deep templates, IPv6 forms of IPv4, what is refused at save."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from appliance.core.errors import Unprocessable
from appliance.printers.models import Printer
from appliance.webhooks import targets as service
from appliance.webhooks import templates as tpl
from appliance.webhooks.models import Delivery, WebhookTarget
from appliance.webhooks.outbound import BlockedAddress, is_restricted, resolve_checked
from tests.appliance.webhooks.test_webhook_delivery import make_target, wait_status
from tests.support.users import csrf_from, login, make_user
from tests.support.webhooks import store_event

EMBEDDED_PRIVATE = [
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "::127.0.0.1", "::10.0.0.1", "::", "::1",
    "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::c0a8:101", "64:ff9b:1::808:808",
    "2002:7f00:1::", "2002:a00:1::1", "2002:c0a8:101::", "2002:a9fe:a9fe::",
    "::ffff:0:127.0.0.1", "::ffff:0:a00:1", "fe80::1%eth0", "fc00::1", "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_every_ipv6_form_of_a_private_ipv4_address_is_restricted(address):
    assert is_restricted(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_in_any_form_are_not(address):
    assert not is_restricted(address)


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"])
async def test_the_address_connected_to_is_refused_in_ipv6_form(address):
    with pytest.raises(BlockedAddress):
        await resolve_checked(address, 80, allow_private=False)


def test_a_deeply_nested_template_is_a_problem_not_a_crash():
    text = "[" * 100_000 + "]" * 100_000
    (problem,) = tpl.check_template("body", '{"a": ' + text + "}")
    assert "nested more than" in problem.message
    assert tpl.check_template("body", '{"a": ' + "[" * 30 + "]" * 30 + "}") == []
    # brackets inside strings do not count
    assert tpl.check_template("body", json.dumps({"a": "[" * 1000})) == []


@pytest.fixture
async def bob(app):
    return await make_user("bob@example.com")


async def test_deep_template_through_the_api_is_a_422(app, client, bob):
    csrf = await login(client, "bob@example.com")
    body = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    response = await client.post("/api/v1/webhooks", headers={"X-CSRF-Token": csrf}, json={
        "name": "deep", "url": "https://hooks.example.com/", "body": body})
    assert response.status_code == 422
    assert "nested" in (await response.get_json())["message"]


@pytest.mark.parametrize("url", [
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/", "http://[::127.0.0.1]/", "http://[::ffff:10.0.0.1]:8080/x",
])
async def test_embedded_private_addresses_are_refused_at_save(app, herald, bob, url):
    with pytest.raises(Unprocessable) as caught:
        await service.create_target(herald, bob, {"name": "x", "url": url})
    assert "private" in caught.value.message


@pytest.mark.parametrize("url", ["http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/",
                                 "http://10.1/hook"])
async def test_numeric_hosts_in_unusual_forms_are_refused_at_save_even_for_an_admin(app, herald, url):
    admin = await make_user("admin@example.com", admin=True)
    with pytest.raises(Unprocessable) as caught:
        await service.create_target(herald, admin, {"name": "x", "url": url})
    assert "four decimal numbers" in caught.value.message


@pytest.mark.parametrize("headers, problem", [
    ('{"X-A": "one\\r\\nX-Injected: two"}', "line break"),
    ('{"X-A": "nul\\u0000"}', "NUL"),
    ('{"Bad Name": "x"}', "header name"),
    ('{"X-A\\n": "x"}', "header name"),
])
async def test_unsendable_headers_are_refused_at_save(app, herald, bob, headers, problem):
    with pytest.raises(Unprocessable) as caught:
        await service.create_target(herald, bob, {"name": "x", "url": "https://hooks.example.com/", "headers": headers})
    assert problem in json.dumps(caught.value.extra["details"])


async def test_a_body_over_the_limit_is_refused_through_the_form(app, client, bob):
    await login(client, "bob@example.com")
    csrf = await csrf_from(client, "/webhooks/new")
    body = json.dumps({"text": "x" * (service.MAX_TEMPLATE_CHARS + 10)})
    response = await client.post("/webhooks/new", form={
        "csrf_token": csrf, "name": "big", "url": "https://hooks.example.com/", "method": "POST",
        "content_type": "json", "headers": "{}", "body": body, "events": "print.done"})
    assert response.status_code == 422
    assert "at most" in await response.get_data(as_text=True)
    assert await WebhookTarget.all().count() == 0


async def test_a_delivery_that_can_never_be_sent_fails_at_once(app, herald, receiver):  # noqa: F811
    admin = await make_user("admin@example.com", admin=True)
    printer = await Printer.create(id=str(uuid.uuid4()), owner=admin, name="Prusa")
    target = await make_target(herald, admin, receiver)
    # saved before save-time checks existed: a URL no request can be made to
    await WebhookTarget.filter(id=target.id).update(url=f"http://127.1:{receiver.port}/")
    await store_event(herald, printer, "print.done")
    (delivery,) = await Delivery.all()
    failed = await wait_status(delivery.id, "failed")
    assert failed.attempts == 1 and "can never be sent" in failed.last_error
    assert receiver.requests == []


async def test_line_breaks_from_event_data_do_not_reach_header_values(app, herald, receiver):  # noqa: F811
    admin = await make_user("admin@example.com", admin=True)
    printer = await Printer.create(id=str(uuid.uuid4()), owner=admin, name="Prusa")
    await make_target(herald, admin, receiver, headers='{"X-File": "@extra.name"}')
    await store_event(herald, printer, "print.done", payload={"name": "a\r\nX-Injected: yes"})
    (got,) = await receiver.wait_for(1)
    assert got.headers["x-file"] == "a  X-Injected: yes"
    assert "x-injected" not in got.headers
    await asyncio.sleep(0)


async def test_secrets_of_a_delivery_are_sealed_at_rest_and_redacted_when_shown(app, client, herald, receiver):  # noqa: F811
    from tortoise import Tortoise

    await make_user("admin@example.com", admin=True)
    csrf = await login(client, "admin@example.com")
    owner_client_headers = {"X-CSRF-Token": csrf}
    response = await client.post("/api/v1/webhooks", headers=owner_client_headers, json={
        "name": "secretive", "url": receiver.url + "/hook?token=@apiSecret&plain=1", "api_secret": "s3cret-VALUE",
        "headers": json.dumps({"Authorization": "Bearer @apiSecret", "X-Api-Key": "k-literal-9", "X-Plain": "hi"}),
        "body": json.dumps({"secret": "@apiSecret", "note": "key is @apiSecret", "password": "pw-literal-7",
                            "topic": "@topic"})})
    assert response.status_code == 201, await response.get_data(as_text=True)
    target = await response.get_json()
    response = await client.post(f"/api/v1/webhooks/{target['id']}/test", json={"type": "print.done"},
                                 headers=owner_client_headers)
    assert response.status_code == 202
    shown = await response.get_json()
    # the receiver gets every secret as written
    (got,) = await receiver.wait_for(1)
    assert got.query == {"token": "s3cret-VALUE", "plain": "1"}
    assert got.headers["authorization"] == "Bearer s3cret-VALUE" and got.headers["x-api-key"] == "k-literal-9"
    assert json.loads(got.body) == {"secret": "s3cret-VALUE", "note": "key is s3cret-VALUE",
                                    "password": "pw-literal-7", "topic": "Print Done"}
    await wait_status(shown["id"], "delivered")
    # at rest: no secret in any column of the delivery row
    rows = await Tortoise.get_connection("default").execute_query_dict("SELECT * FROM webhook_deliveries")
    stored = json.dumps(rows, default=str)
    for secret in ("s3cret-VALUE", "k-literal-9", "pw-literal-7"):
        assert secret not in stored
    # shown: the API (answer, list, detail) and the page
    detail = await (await client.get(f"/api/v1/webhooks/deliveries/{shown['id']}")).get_json()
    listing = await (await client.get(f"/api/v1/webhooks/{target['id']}/deliveries")).get_json()
    page = await (await client.get(f"/webhooks/deliveries/{shown['id']}")).get_data(as_text=True)
    for text in (json.dumps(shown), json.dumps(detail), json.dumps(listing), page):
        for secret in ("s3cret-VALUE", "k-literal-9", "pw-literal-7"):
            assert secret not in text
        assert "[redacted]" in text
    assert detail["request"]["headers"]["X-Plain"] == "hi"
    assert detail["request"]["body"]["topic"] == "Print Done"
    # a resend still sends the real values
    response = await client.post(f"/api/v1/webhooks/deliveries/{shown['id']}/resend", headers=owner_client_headers)
    assert response.status_code == 202
    second = (await receiver.wait_for(2))[1]
    assert second.body == got.body and second.headers["authorization"] == "Bearer s3cret-VALUE"


async def test_rows_stored_before_sealing_are_shown_redacted_by_name(app, herald, receiver):  # noqa: F811
    admin = await make_user("admin@example.com", admin=True)
    target = await make_target(herald, admin, receiver)
    row = await Delivery.create(target_id=target.id, event_type="print.done", occurred_at=herald.clock.now(),
                                accepted_at=herald.clock.now(), webhook_id="msg_1", url="https://h.example/?api_key=old1",
                                method="POST", headers={"Authorization": "Bearer old2"}, body_kind="json",
                                body={"token": "old3"}, status="failed", next_attempt_at=herald.clock.now())
    shown = service.delivery_json(row)
    assert "old1" not in json.dumps(shown) and "old2" not in json.dumps(shown) and "old3" not in json.dumps(shown)


async def test_presets_is_not_shadowed_by_a_webhook_id_and_405_names_the_methods(app, client, bob):
    csrf = await login(client, "bob@example.com")
    assert (await client.get("/api/v1/webhooks/presets")).status_code == 200
    response = await client.delete("/api/v1/webhooks/presets", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert (await client.get("/api/v1/webhooks/not-a-number")).status_code == 404
    assert (await client.get("/api/v1/webhooks/99999999999999999999999")).status_code == 404
