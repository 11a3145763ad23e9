"""Bad input a newcomer sent: each gets a 4xx naming the problem, never a 500, and nothing stored is lost."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from appliance.accounts.models import AccessToken
from appliance.core.secrets import new_token, token_hash
from appliance.printers.chart import build_chart
from appliance.printers.models import Event, Printer, StatusSample
from appliance.printers.status import flush_status
from tests.appliance.printers.test_events import JPEG, multipart
from tests.support.printers import STATUS, bearer, event_body, make_printer
from tests.support.users import login, make_user

HUGE = "99999999999999999999999"
JSON = {"Content-Type": "application/json"}


def strict_json(text: str):
    """Parse as RFC 8259 JSON: NaN and Infinity are not in it."""
    def refuse(name):
        raise ValueError(f"{name} in the output")
    return json.loads(text, parse_constant=refuse)


async def read_token(user, scope="printers:read webhooks") -> str:
    token = new_token("hat_")
    await AccessToken.create(token_hash=token_hash(token), user=user, scope=scope)
    return token


async def answer(response) -> dict:
    return strict_json(await response.get_data(as_text=True))


# --- 1. NaN and Infinity ------------------------------------------------------------------


NAN_STATUS = (b'{"state":"Printing","state_id":"printing",'
              b'"temperatures":{"tool0":{"actual":NaN,"target":Infinity}},"job":{"z":-Infinity}}')


@pytest.mark.parametrize("body, field", [
    (NAN_STATUS, "temperatures.tool0.actual"),
    (b'{"state":"x","state_id":"printing","job":{"z":-Infinity}}', "job.z"),
    (b'{"state":"x","state_id":"printing","job":{"progress":NaN}}', "job.progress"),
    (b'{"state":"x","state_id":"printing","extra":{"deep":[1,Infinity]}}', "extra.deep.1"),
    (b'{"state":"x","state_id":"printing","job":{"z":1e999}}', "job.z"),
])
async def test_non_finite_numbers_in_a_status_are_refused(client, herald, body, field):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    assert (await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(key))).status_code == 204
    response = await client.put("/api/v1/printer/status", data=body, headers={**bearer(key), **JSON})
    error = await answer(response)
    assert response.status_code == 422, error
    assert error["error"] == "invalid_request"
    assert error["message"].startswith(f"{field}: "), error
    assert "NaN" in error["message"] and "Infinity" in error["message"]
    # The status before is kept, every page and list still answers, the JSON is valid.
    await flush_status(herald)
    assert (await Printer.get(id=printer.id)).status["job"]["z"] == 12.4
    await login(client)
    assert (await client.get(f"/printers/{printer.id}")).status_code == 200
    listed = await client.get("/api/v1/printers")
    assert listed.status_code == 200
    assert (await answer(listed))["printers"][0]["status"]["job"]["z"] == 12.4


@pytest.mark.parametrize("part, field", [
    ({"payload": {"name": "benchy.gcode", "temp": float("nan")}}, "payload.temp"),
    ({"printer_data": {"temps": [{"tool0": {"actual": float("inf")}}]}}, "printer_data.temps.0.tool0.actual"),
])
@pytest.mark.parametrize("as_multipart", [False, True])
async def test_non_finite_numbers_in_an_event_are_refused(client, herald, part, field, as_multipart):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    text = json.dumps(event_body("nan-1", **part)).encode()  # Python writes NaN / Infinity
    if as_multipart:
        data, ctype = multipart([("event", "", text, "application/json"), ("snapshot", "s.jpg", JPEG, "image/jpeg")])
        response = await client.post("/api/v1/printer/events", data=data,
                                     headers={**bearer(key), "Content-Type": ctype})
    else:
        response = await client.post("/api/v1/printer/events", data=text, headers={**bearer(key), **JSON})
    error = await answer(response)
    assert response.status_code == 422, error
    assert error["message"].startswith(f"{field}: "), error
    assert not await Event.filter(printer_id=printer.id).exists()
    token = await read_token(user)
    listed = await client.get(f"/api/v1/printers/{printer.id}/events", headers=bearer(token))
    assert listed.status_code == 200 and (await answer(listed))["events"] == []


async def test_non_finite_numbers_refused_by_the_other_json_endpoints(client, herald):
    user = await make_user()
    token = await read_token(user)
    response = await client.post("/api/v1/webhooks", headers={**bearer(token), **JSON},
                                  data=b'{"name":"x","url":"https://example.com/h","progress_step":NaN}')
    error = await answer(response)
    assert response.status_code == 422 and error["message"].startswith("progress_step: "), error
    csrf = await login(client)
    response = await client.post("/api/v1/tokens", headers={"X-CSRF-Token": csrf, **JSON},
                                 data=b'{"name":"x","n":Infinity}')
    error = await answer(response)
    assert response.status_code == 422 and error["message"].startswith("n: "), error


def _sample(minutes: int, temperatures, progress=None) -> StatusSample:
    taken = datetime(2026, 11, 22, 12, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return StatusSample(printer_id="p", taken_at=taken, temperatures=temperatures, progress=progress)


def test_chart_skips_non_finite_values_already_stored():
    samples = [
        _sample(0, {"tool0": {"actual": 200.0, "target": 210.0}}, 10.0),
        _sample(1, {"tool0": {"actual": math.nan, "target": math.inf}}, math.nan),
        _sample(2, {"tool0": {"actual": -math.inf, "target": 210.0}}, math.inf),
        _sample(3, {"tool0": {"actual": 205.0, "target": 210.0}}, 20.0),
    ]
    chart = build_chart(samples)
    assert chart is not None
    (tool,) = chart.series
    assert len(tool.points.split()) == 2  # the two finite readings
    assert len(chart.progress.points.split()) == 2
    assert chart.y_ticks[-1][1] == "250°"  # scaled by the finite readings only
    assert "nan" not in chart.summary.lower() and "inf" not in chart.summary.lower()
    latest_bad = build_chart(samples[:3])
    assert latest_bad is not None and "tool0 last" not in latest_bad.summary


# SQLite only: PostgreSQL's jsonb never stored NaN, so only SQLite can hold rows from before the fix.
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_json_output_never_holds_nan(client, herald, backend):
    user = await make_user()
    printer, _key = await make_printer(herald, user)
    await Event.create(printer_id=printer.id, event_id="old", type="print.started", sequence=1,
                       occurred_at=herald.clock.now(), received_at=herald.clock.now(),
                       payload={"temp": math.nan, "big": math.inf, "ok": 1.5})
    token = await read_token(user)
    response = await client.get(f"/api/v1/printers/{printer.id}/events", headers=bearer(token))
    assert response.status_code == 200
    (event,) = (await answer(response))["events"]
    assert event["payload"] == {"temp": None, "big": None, "ok": 1.5}


# --- 2. huge ids ---------------------------------------------------------------------------


async def test_every_route_with_an_id_answers_404_for_a_huge_id(app, client, herald):
    await make_user("admin@example.com", admin=True)
    csrf = await login(client, "admin@example.com")
    rules = [rule for rule in app.app.url_map.iter_rules() if rule.arguments]
    int_rules = [rule for rule in rules
                 if any(type(c).__name__ in ("IntegerConverter", "RowIdConverter")
                        for c in rule._converters.values())]
    assert int_rules, "no route with an integer converter: the walk would prove nothing"
    walked = 0
    for rule in rules:
        if not any(name.endswith("_id") for name in rule.arguments) and rule not in int_rules:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(r"<(?:[^<>:]+:)?" + name + ">", HUGE, path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = await client.open(path, method=method, headers={"X-CSRF-Token": csrf},
                                         form={"csrf_token": csrf} if method == "POST" else None)
            text = await response.get_data(as_text=True)
            assert response.status_code < 500, (method, path, text[:300])
            if rule in int_rules or any(n.endswith("_id") and n != "client_id" for n in rule.arguments):
                assert response.status_code == 404, (method, path, response.status_code, text[:300])
            walked += 1
    assert walked >= 15, walked


@pytest.mark.parametrize("number", [str(2**31), str(2**63 - 1), str(2**63), HUGE, "-1", "0"])
async def test_ids_at_the_edges_of_the_database_integers(client, herald, number):
    user = await make_user()
    token = await read_token(user)
    for path in (f"/api/v1/webhooks/{number}", f"/api/v1/webhooks/deliveries/{number}"):
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 404, (path, await response.get_data(as_text=True))


# --- 3. event times ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z",
                                  "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z"])
async def test_event_time_outside_the_accepted_range(client, herald, when):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    response = await client.post("/api/v1/printer/events", json=event_body("t-1", occurred_at=when),
                                 headers=bearer(key))
    error = await answer(response)
    assert response.status_code == 422, error
    assert error["message"].startswith("occurred_at: ") and "2000" in error["message"], error
    assert not await Event.filter(printer_id=printer.id).exists()


async def test_event_time_inside_the_range_is_accepted(client, herald):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    for n, when in enumerate(["2000-01-01T00:00:00+00:00", "2100-12-31T23:59:59+00:00"]):
        response = await client.post("/api/v1/printer/events", json=event_body(f"ok-{n}", occurred_at=when),
                                     headers=bearer(key))
        assert response.status_code == 202, await response.get_data(as_text=True)


# --- 4. the Bearer scheme is case-insensitive -------------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
async def test_bearer_scheme_any_case(client, herald, scheme):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    token = await read_token(user)
    response = await client.put("/api/v1/printer/status", json=STATUS, headers={"Authorization": f"{scheme} {key}"})
    assert response.status_code == 204, await response.get_data(as_text=True)
    response = await client.get("/api/v1/printers", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    # A Bearer request needs no CSRF token, whatever the case of the scheme.
    response = await client.post("/api/v1/webhooks", headers={"Authorization": f"{scheme} {token}"},
                                 json={"name": "x", "url": "https://example.com/hook"})
    assert response.status_code == 201, await response.get_data(as_text=True)
    response = await client.get("/api/v1/printers", headers={"Authorization": f"{scheme}  {token}"})
    assert response.status_code == 200
    response = await client.get("/api/v1/printers", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 401


# --- 5. error messages and content types -------------------------------------------------------


async def test_body_errors_are_consistent(client, herald):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    headers = {**bearer(key), **JSON}
    for data in (b"", b"   "):
        response = await client.put("/api/v1/printer/status", data=data, headers=headers)
        error = await answer(response)
        assert response.status_code == 400 and error["error"] == "invalid_json", error
        assert error["message"] == "body: empty; send a JSON object.", error
    response = await client.put("/api/v1/printer/status", data=b'{"state": "Print', headers=headers)
    error = await answer(response)
    assert response.status_code == 400 and error["error"] == "invalid_json"
    assert error["message"].startswith("body: not valid JSON (") and "Invalid JSON" not in error["message"], error
    for data in (b"[1, 2]", b'"text"', b"5", b"null"):
        response = await client.put("/api/v1/printer/status", data=data, headers=headers)
        error = await answer(response)
        assert response.status_code == 422 and error["error"] == "invalid_request", error
        assert error["message"] == "body: send a JSON object.", error


async def test_link_names_the_field_it_was_sent_as(client):
    response = await client.post("/api/v1/link", json={"printer_name": "   "})
    error = await answer(response)
    assert response.status_code == 422, error
    assert error["details"][0]["field"] == "printer_name" and error["message"].startswith("printer_name: ")


async def test_tokens_endpoint_says_send_an_object(client):
    await make_user()
    csrf = await login(client)
    for data in (b"[1]", b'"x"'):
        response = await client.post("/api/v1/tokens", data=data, headers={"X-CSRF-Token": csrf, **JSON})
        error = await answer(response)
        assert response.status_code == 422, error
        assert error["message"] == "body: send a JSON object.", error
        assert "TokenCreate" not in json.dumps(error)
    response = await client.post("/api/v1/tokens", data=b"", headers={"X-CSRF-Token": csrf, **JSON})
    error = await answer(response)
    assert response.status_code == 400 and error["error"] == "invalid_json", error


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_json_endpoints_want_application_json(client, herald, ctype):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    token = await read_token(user)
    headers = {"Content-Type": ctype} if ctype else {}
    calls = [
        ("PUT", "/api/v1/printer/status", bearer(key), json.dumps(STATUS)),
        ("POST", "/api/v1/printer/events", bearer(key), json.dumps(event_body("ct-1"))),
        ("POST", "/api/v1/printer/verify", bearer(key), json.dumps({"plugin_version": "0.1.0"})),
        ("POST", "/api/v1/link", {}, json.dumps({"printer_name": "Prusa"})),
        ("POST", "/api/v1/webhooks", bearer(token), json.dumps({"name": "x", "url": "https://example.com/h"})),
    ]
    for method, path, auth, body in calls:
        response = await client.open(path, method=method, data=body.encode(), headers={**auth, **headers})
        error = await answer(response)
        assert response.status_code == 415, (path, error)
        assert error["error"] == "unsupported_media_type" and "application/json" in error["message"], error
    assert not await Event.filter(printer_id=printer.id).exists()
    # With the right type each of them works; charset parameters are fine.
    for method, path, auth, body in calls:
        response = await client.open(path, method=method, data=body.encode(),
                                     headers={**auth, "Content-Type": "application/json; charset=utf-8"})
        assert response.status_code < 300, (path, await response.get_data(as_text=True))


# --- 6. plugin_version ---------------------------------------------------------------------------


@pytest.mark.parametrize("version, status", [
    ("banana", 422), ("", 422), ("0.1.0", 200), ("0.2.0.dev3", 200), ("v1.0.0rc1", 200), ("0.1.0+local", 200),
    ("0.0.9", 426),
])
async def test_plugin_version_is_a_version(client, herald, version, status):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    response = await client.post("/api/v1/printer/verify", json={"plugin_version": version}, headers=bearer(key))
    body = await answer(response)
    assert response.status_code == status, body
    if status == 422:
        assert body["message"].startswith("plugin_version: "), body


# --- 7. event types ----------------------------------------------------------------------------


async def test_unknown_event_types_are_refused_naming_the_known_ones(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    response = await client.post("/api/v1/printer/events", json=event_body("x-1", "print.exploded"),
                                 headers=bearer(key))
    error = await answer(response)
    assert response.status_code == 422, error
    assert error["message"].startswith("type: ") and "print.exploded" in error["message"]
    assert "print.started" in error["message"] and "printer.offline" not in error["message"]
    assert not await Event.filter(printer_id=printer.id).exists()
    # What can be posted can be filtered by, and the reverse.
    token = await read_token(user)
    response = await client.post("/api/v1/printer/events", json=event_body("x-2", "print.done"), headers=bearer(key))
    assert response.status_code == 202
    response = await client.get(f"/api/v1/printers/{printer.id}/events?type=print.done", headers=bearer(token))
    assert [e["id"] for e in (await answer(response))["events"]] == ["x-2"]


# --- 8. webhook URL length ---------------------------------------------------------------------


async def test_webhook_url_is_limited_to_2048_characters(client, herald):
    user = await make_user()
    token = await read_token(user)
    base = "https://example.com/"
    too_long = base + "a" * (2049 - len(base))
    just_right = base + "a" * (2048 - len(base))
    response = await client.post("/api/v1/webhooks", headers=bearer(token), json={"name": "x", "url": too_long})
    error = await answer(response)
    assert response.status_code == 422 and error["message"].startswith("url: ") and "2048" in error["message"]
    response = await client.post("/api/v1/webhooks", headers=bearer(token), json={"name": "x", "url": just_right})
    assert response.status_code == 201
    target_id = (await answer(response))["id"]
    response = await client.patch(f"/api/v1/webhooks/{target_id}", headers=bearer(token), json={"url": too_long})
    assert response.status_code == 422
    response = await client.post("/api/v1/webhooks", headers=bearer(token),
                                 json={"name": "x", "url": "https://example.com/h", "oauth_enabled": True,
                                       "oauth_url": too_long})
    error = await answer(response)
    assert response.status_code == 422 and error["message"].startswith("oauth_url: ")
    csrf = await login(client)
    response = await client.post("/webhooks/new", form={"csrf_token": csrf, "name": "form", "url": too_long,
                                                        "events": "print.done"})
    page = await response.get_data(as_text=True)
    assert response.status_code == 422 and "2048" in page
