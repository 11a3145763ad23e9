"""GET /api/v1/printers/<id>/events: a printer's events as its owner (or their script) reads them."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import pytest

from appliance.accounts.models import AccessToken
from appliance.core.secrets import new_token, token_hash
from appliance.printers.events import event_page_query, record_event
from appliance.printers.models import Event
from tests.appliance.printers.test_events import JPEG, multipart
from tests.support.printers import bearer, event_body, make_printer
from tests.support.users import login, make_user

BOB = "bob@example.com"


async def post_event(client, key, event_id, type_="print.started", **extra):
    response = await client.post("/api/v1/printer/events", json=event_body(event_id, type_, **extra),
                                 headers=bearer(key))
    assert response.status_code == 202, await response.get_data(as_text=True)


async def read_token(user, scope="printers:read") -> str:
    token = new_token("hat_")
    await AccessToken.create(token_hash=token_hash(token), user=user, scope=scope)
    return token


async def get_events(client, printer_id, token=None, **params):
    query = "&".join(f"{k}={v}" for k, value in params.items()
                     for v in (value if isinstance(value, list) else [value]))
    headers = bearer(token) if token else {}
    return await client.get(f"/api/v1/printers/{printer_id}/events" + (f"?{query}" if query else ""),
                            headers=headers)


async def walk(client, printer_id, token, **params) -> list[list[dict]]:
    """Every page from the first, following `next`; the pages in order."""
    pages, before = [], None
    while True:
        extra = {"before": before} if before else {}
        response = await get_events(client, printer_id, token, **params, **extra)
        assert response.status_code == 200, await response.get_data(as_text=True)
        body = await response.get_json()
        pages.append(body["events"])
        before = body["next"]
        if before is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


async def test_events_newest_first_as_the_contract_shapes_them(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    token = await read_token(user)
    await post_event(client, key, "first", payload={"name": "benchy.gcode"})
    clock.advance(5)
    await post_event(client, key, "second", "print.progress", payload={"progress": 1})
    clock.advance(5)
    await record_event(herald, printer.id, event_type="printer.offline", occurred_at=clock.now())

    response = await get_events(client, printer.id, token)
    assert response.status_code == 200
    body = await response.get_json()
    assert body["next"] is None
    events = body["events"]
    assert [e["type"] for e in events] == ["printer.offline", "print.progress", "print.started"]
    assert set(events[2]) == {"id", "type", "occurred_at", "received_at", "payload", "snapshot"}
    first = events[2]
    assert first["id"] == "first"
    assert first["occurred_at"] == "2026-11-22T13:03:07Z"  # sent as 14:03:07+01:00
    received = datetime.fromisoformat(first["received_at"])
    assert received.utcoffset().total_seconds() == 0 and first["received_at"].endswith("Z")
    assert datetime.fromisoformat(events[0]["received_at"]) > received
    assert first["payload"] == {"name": "benchy.gcode"}
    assert first["snapshot"] is False
    assert events[1]["payload"] == {"progress": 1}
    assert events[0]["payload"] is None and events[0]["id"]  # Herald's own event: a UUID of its own
    # OctoPrint's printer_data stays inside Herald (it feeds webhook templates).
    assert "Printing" not in json.dumps(body)


async def test_the_browser_session_reads_them_too(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await post_event(client, key, "only")
    await login(client)
    response = await client.get(f"/api/v1/printers/{printer.id}/events")
    assert response.status_code == 200
    assert [e["id"] for e in (await response.get_json())["events"]] == ["only"]


async def test_pages_walk_every_event_once_even_as_new_ones_arrive(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    other, other_key = await make_printer(herald, user, "Other")
    token = await read_token(user)
    sent = [f"e{i:02d}" for i in range(11)]
    for i, event_id in enumerate(sent):
        await post_event(client, key, event_id, "print.progress", payload={"progress": i + 1})
        await post_event(client, other_key, f"other-{i}", "print.progress", payload={"progress": i + 1})

    pages = await walk(client, printer.id, token, limit=3)
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert [e["id"] for page in pages for e in page] == sent[::-1]

    # Keyset, not OFFSET: an event arriving between two pages neither repeats nor
    # hides one on the following page.
    first = await (await get_events(client, printer.id, token, limit=4)).get_json()
    await post_event(client, key, "late", "print.done")
    second = await (await get_events(client, printer.id, token, limit=4, before=first["next"])).get_json()
    assert [e["id"] for e in first["events"] + second["events"]] == sent[::-1][:8]

    # An exact multiple of the page size ends with next = null, not an empty page.
    pages = await walk(client, other.id, token, limit=11)
    assert [len(page) for page in pages] == [11]
    assert (await (await get_events(client, other.id, token, limit=200)).get_json())["next"] is None


async def test_type_filter_repeated_or_comma_separated(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    token = await read_token(user)
    kinds = ["print.started", "print.progress", "print.progress", "print.paused", "print.resumed",
             "print.progress", "print.done", "printer.error"]
    for i, kind in enumerate(kinds):
        await post_event(client, key, f"k{i}", kind)

    async def ids(**params):
        return [e["id"] for page in await walk(client, printer.id, token, **params) for e in page]

    assert await ids(type="print.progress") == ["k5", "k2", "k1"]
    assert await ids(type="print.progress", limit=1) == ["k5", "k2", "k1"]
    assert await ids(type=["print.done", "print.started"]) == ["k6", "k0"]
    assert await ids(type="print.done,printer.error, print.started") == ["k7", "k6", "k0"]
    assert await ids(type="printer.offline") == []
    assert len(await ids()) == len(kinds)


async def test_only_the_owner_with_the_scope_reads_them(client, herald):
    ada = await make_user()
    bob = await make_user(BOB)
    printer, key = await make_printer(herald, ada)
    await post_event(client, key, "secret")
    bobs_token = await read_token(bob)
    response = await get_events(client, printer.id, bobs_token)
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"
    assert "secret" not in await response.get_data(as_text=True)
    unknown = await get_events(client, "00000000-0000-4000-8000-000000000000", await read_token(ada))
    assert unknown.status_code == 404
    # Exactly as GET /api/v1/printers/<id> answers.
    cases = [(None, 401), (await read_token(ada, "webhooks"), 403), (key, 401), ("hat_nonsense", 401)]
    for credential, status in cases:
        response = await get_events(client, printer.id, credential)
        single = await client.get(f"/api/v1/printers/{printer.id}", headers=bearer(credential) if credential else {})
        assert (response.status_code, single.status_code) == (status, status), credential
        assert (await response.get_json())["message"]
    insufficient = await get_events(client, printer.id, await read_token(ada, "webhooks"))
    assert "printers:read" in (await insufficient.get_json())["message"]
    # Bob, logged in, fares no better than with his token.
    await login(client, BOB)
    assert (await client.get(f"/api/v1/printers/{printer.id}/events")).status_code == 404


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
    ("limit=", "limit"), ("limit=1.5", "limit"), ("limit=%C2%B2", "limit"),
    ("before=nonsense", "before"), ("before=", "before"), ("before=%00%FF", "before"),
    ("before=" + base64.urlsafe_b64encode(b"seq:-3").decode(), "before"),
    ("before=" + base64.urlsafe_b64encode(b"id:3").decode(), "before"),
    ("type=print.exploded", "type"), ("type=print.done,", "type"), ("type=PRINT.DONE", "type"),
])
async def test_bad_parameters_get_400_naming_them(client, herald, query, parameter):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await post_event(client, key, "one")
    response = await client.get(f"/api/v1/printers/{printer.id}/events?{query}",
                                headers=bearer(await read_token(user)))
    assert response.status_code == 400, await response.get_data(as_text=True)
    body = await response.get_json()
    assert body["error"] == "invalid_request"
    assert body["message"].startswith(f"{parameter}: ")
    assert body["details"][0]["field"] == parameter


async def test_unknown_type_is_named_in_the_message(client, herald):
    user = await make_user()
    printer, _key = await make_printer(herald, user)
    response = await get_events(client, printer.id, await read_token(user), type="print.done,print.exploded")
    assert response.status_code == 400
    message = (await response.get_json())["message"]
    assert "print.exploded" in message and "print.done," in message  # the list of known types


async def test_snapshots_are_flagged_never_located(client, herald, settings):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    body, ctype = multipart([("event", "", json.dumps(event_body("with-snap", "print.done")).encode(),
                              "application/json"), ("snapshot", "snap.jpg", JPEG, "image/jpeg")])
    response = await client.post("/api/v1/printer/events", data=body, headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 202
    stored = await Event.get(event_id="with-snap")
    assert stored.snapshot_path and (settings.data_path / stored.snapshot_path).exists()

    response = await get_events(client, printer.id, await read_token(user))
    text = await response.get_data(as_text=True)
    assert [(e["id"], e["snapshot"]) for e in json.loads(text)["events"]] == [("with-snap", True)]
    assert stored.snapshot_path not in text and "snapshots" not in text and ".jpg" not in text


async def test_openapi_documents_the_events_endpoint(client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    operation = document["paths"]["/api/v1/printers/{printer_id}/events"]["get"]
    assert operation["security"] == [{"accessToken": []}]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"printer_id", "limit", "before", "type"} <= set(parameters)
    assert parameters["limit"]["schema"]["maximum"] == 200
    assert "print.done" in json.dumps(parameters["type"])
    schema = json.dumps(operation["responses"]["200"])
    assert "EventList" in schema
    assert {"200", "400", "404"} <= set(operation["responses"])
    event_view = document["components"]["schemas"]["EventView"]["properties"]
    assert set(event_view) == {"id", "type", "occurred_at", "received_at", "payload", "snapshot"}


# SQLite only: the plan of an empty table on PostgreSQL says nothing; SQLite's planner uses the schema.
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_page_is_read_through_the_printer_sequence_index(app, backend):
    """Deep pages cost what the first does: the (printer_id, sequence) index, no sort, no scan."""
    from tortoise import Tortoise

    connection = Tortoise.get_connection("default")
    for before, types in ((None, ()), (1000, ()), (1000, ("print.done", "print.failed"))):
        query = event_page_query("p", limit=50, before=before, types=types)
        plan = await connection.execute_query_dict("EXPLAIN QUERY PLAN " + query.sql(params_inline=True))
        details = " | ".join(row["detail"] for row in plan)
        match = re.search(r"SEARCH events USING INDEX (\w+) \(printer_id=\?", details)
        assert match and "TEMP B-TREE" not in details, details
        columns = await connection.execute_query_dict(
            f"SELECT name FROM pragma_index_info('{match.group(1)}') ORDER BY seqno")
        assert [c["name"] for c in columns] == ["printer_id", "sequence"], details
