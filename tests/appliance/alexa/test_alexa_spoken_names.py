"""An owner's spoken name for a printer: set on the printer's page, answered to and said by
the skill, and carried into the skill package as a synonym of the printer's slot value."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import timedelta

import pytest

from appliance.printers.models import Printer
from skill import LOCALES
from tests.support.alexa import NOW, SKILL_ID, envelope, speech
from tests.support.users import login, make_user


@pytest.fixture
def settings(settings):
    return settings.replace(public_url="https://herald.example.net", alexa_skill_id=SKILL_ID,
                            alexa_single_owner=True, alexa_verify_requests=False)


async def _printer(owner, name):
    return await Printer.create(id=str(uuid.uuid4()), owner=owner, name=name, key_hash=uuid.uuid4().hex * 2,
                                online=True, last_seen_at=NOW - timedelta(seconds=30),
                                status={"state": "Operational", "state_id": "operational"})


async def _ask(client, **kwargs):
    response = await client.post("/alexa", data=json.dumps(envelope(**kwargs)).encode(),
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return speech(await response.get_json())


async def test_a_spoken_name_is_set_on_the_printer_page_and_used_by_alexa(client):
    owner = await make_user("owner@example.com", admin=True)
    csrf = await login(client, "owner@example.com")
    printer = await _printer(owner, "MK4-01")
    await _printer(owner, "Voron 2.4")
    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert 'name="spoken_name"' in page and "Spoken name" in page

    response = await client.post(f"/printers/{printer.id}/rename", form={
        "csrf_token": csrf, "name": "MK4-01", "spoken_name": "  the   big one "})
    assert response.status_code == 302
    assert (await Printer.get(id=printer.id)).spoken_name == "the big one"
    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert 'value="the big one"' in page

    assert await _ask(client, intent="PrinterStatusIntent", printer="the big one") == "the big one is idle."
    assert await _ask(client, intent="PrinterStatusIntent", printer="MK4-01") == "the big one is idle."
    assert await _ask(client, intent="PrinterStatusIntent", printer="voron two point four") == "Voron 2.4 is idle."
    assert await _ask(client, intent="ListPrintersIntent") == "You have 2 printers: the big one and Voron 2.4."

    archive = zipfile.ZipFile(io.BytesIO(await (await client.get("/alexa/skill-package.zip")).get_data()))
    for locale in LOCALES:
        model = json.loads(archive.read(f"skill-package/interactionModels/custom/{locale}.json"))
        (printer_type,) = [t for t in model["interactionModel"]["languageModel"]["types"]
                           if t["name"] == "PRINTER_NAME"]
        by_value = {v["name"]["value"]: v["name"].get("synonyms", []) for v in printer_type["values"]}
        assert "the big one" in by_value["MK4-01"], locale
        assert by_value["Voron 2.4"] == [{"en": "Voron two point four", "de": "Voron zwei komma vier"}[locale[:2]]]

    # a rename without the field (an older form) keeps it; an empty field clears it
    await client.post(f"/printers/{printer.id}/rename", form={"csrf_token": csrf, "name": "MK4 One"})
    assert (await Printer.get(id=printer.id)).spoken_name == "the big one"
    await client.post(f"/printers/{printer.id}/rename", form={"csrf_token": csrf, "name": "MK4 One",
                                                              "spoken_name": ""})
    assert (await Printer.get(id=printer.id)).spoken_name is None
    assert await _ask(client, intent="PrinterStatusIntent", printer="mk4 one") == "MK4 One is idle."


async def test_a_spoken_name_without_words_is_refused_next_to_the_field(client):
    owner = await make_user("owner@example.com", admin=True)
    csrf = await login(client, "owner@example.com")
    printer = await _printer(owner, "MK4-01")
    response = await client.post(f"/printers/{printer.id}/rename", form={
        "csrf_token": csrf, "name": "MK4-01", "spoken_name": "🚀 !!"})
    assert response.status_code == 400
    assert "letters or digits" in await response.get_data(as_text=True)
    assert (await Printer.get(id=printer.id)).spoken_name is None
