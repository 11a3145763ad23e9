"""No user can see or touch another user's printer through any route that takes a printer id."""

from __future__ import annotations

from appliance.mqtt.models import PublishChoice
from appliance.printers.models import LinkRequest, Printer
from appliance.printers.status import flush_status
from tests.support.printers import STATUS, bearer, make_printer
from tests.support.users import login, make_user

# Every route with a printer id, with the form it is sent (None: no body).
CASES = {
    ("GET", "/api/v1/printers/<printer_id>"): None,
    ("GET", "/api/v1/printers/<printer_id>/events"): None,
    ("GET", "/printers/<printer_id>"): None,
    ("POST", "/printers/<printer_id>/rename"): {"name": "Mine now"},
    ("POST", "/printers/<printer_id>/rotate"): {},
    ("GET", "/printers/<printer_id>/remove"): None,
    ("GET", "/printers/<printer_id>/rotate"): None,
    ("POST", "/printers/<printer_id>/remove"): {},
    ("GET", "/printers/<printer_id>/live"): None,
    ("POST", "/printers/<printer_id>/live"): {"hours": "2"},
    ("POST", "/printers/<printer_id>/live/<live_id>/revoke"): {},
    ("GET", "/printers/<printer_id>/pictures/<kind>"): None,  # the owner's printer has a webcam picture
    ("POST", "/printers/<printer_id>/home-assistant"): {"publish": "on"},
    ("POST", "/printers/<printer_id>/open-octoprint"): {},
    ("POST", "/printers/<printer_id>/job"): {"action": "pause"},
    ("POST", "/printers/<printer_id>/control"): {"allow": "on"},
    ("POST", "/api/v1/printers/<printer_id>/job"): {"action": "pause"},
}


async def test_every_printer_route_is_covered(app):
    routes = {(method, rule.rule) for rule in app.app.url_map.iter_rules() if "printer_id" in rule.rule
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == set(CASES), "a new route takes a printer id: add it to CASES"


async def test_other_users_printer_answers_404_everywhere(client, herald):
    owner = await make_user("owner@example.com")
    await make_user("mallory@example.com")
    printer, key = await make_printer(herald, owner, "Owner's printer")
    await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(key))
    await flush_status(herald)
    from tests.support.pictures import JPEG

    picture = await client.put("/api/v1/printer/pictures/webcam", data=JPEG, headers=bearer(key))
    assert picture.status_code == 204

    csrf = await login(client, "mallory@example.com")
    for (method, rule), form in CASES.items():
        path = rule.replace("<printer_id>", printer.id).replace("<kind>", "webcam")
        if form is None:
            response = await client.open(path, method=method)
        else:
            response = await client.open(path, method=method, form={**form, "csrf_token": csrf})
        assert response.status_code == 404, (method, rule, response.status_code)
        assert "Owner" not in await response.get_data(as_text=True)
    listing = await (await client.get("/api/v1/printers")).get_json()
    assert listing == {"printers": []}
    page = await (await client.get("/printers")).get_data(as_text=True)
    assert "Owner&#39;s printer" not in page and "Owner's printer" not in page

    # Relinking someone else's printer through the approval form is refused too.
    started = await (await client.post("/api/v1/link", json={"printer_name": "x"})).get_json()
    response = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                                       "decision": "approve", "relink": printer.id})
    assert response.status_code == 404
    assert (await LinkRequest.get(printer_name="x")).approved_by_id is None

    # Nothing changed: same name, key still works.
    stored = await Printer.get(id=printer.id)
    assert stored.name == "Owner's printer"
    assert (await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))).status_code == 200
    assert await PublishChoice.filter(printer_id=printer.id).count() == 0  # not published by Mallory
