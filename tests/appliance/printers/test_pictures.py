"""Pictures of the print: the job's thumbnail and the latest webcam snapshot, per printer."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from tests.support.pictures import JPEG, png
from tests.support.printers import make_printer
from tests.support.users import login, make_user


@pytest.fixture
def backend() -> str:
    return "sqlite"  # pictures live in files; the database only says whose printer it is


def _auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


async def _push_job(client, key: str, file: str) -> None:
    status = {"state": "Printing", "state_id": "printing", "job": {"file": file, "progress": 10}}
    assert (await client.put("/api/v1/printer/status", json=status, headers=_auth(key))).status_code == 204


async def test_thumbnail_and_webcam_show_on_the_card_and_the_printer_page(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await login(client)
    await _push_job(client, key, "benchy.gcode")
    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert "pictures-heading" not in page  # nothing sent yet: no empty box

    thumbnail = png(300, 300)
    response = await client.put("/api/v1/printer/pictures/thumbnail", data=thumbnail,
                                headers=_auth(key, **{"Content-Type": "image/png",
                                                      "X-Herald-Job-File": "benchy.gcode"}))
    assert response.status_code == 204, await response.get_data(as_text=True)
    # A webcam snapshot arrives with an event (multipart), as the plugin sends it.
    event = {"id": str(uuid.uuid4()), "type": "print.started", "occurred_at": "2026-11-22T14:03:07+01:00",
             "payload": {"name": "benchy.gcode"}}
    response = await client.post("/api/v1/printer/events", headers=_auth(key), files={
        "event": _file("event.json", json.dumps(event).encode(), "application/json"),
        "snapshot": _file("snapshot.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 202, await response.get_data(as_text=True)

    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert "pictures-heading" in page and "Latest webcam snapshot" in page and "slicer's preview" in page
    dashboard = await (await client.get("/")).get_data(as_text=True)
    assert 'data-role="pictures"' in dashboard
    for kind, data, media_type in (("thumbnail", thumbnail, "image/png"), ("webcam", JPEG, "image/jpeg")):
        image = await client.get(f"/printers/{printer.id}/pictures/{kind}")
        assert image.status_code == 200 and image.content_type == media_type
        assert await image.get_data() == data

    # The next job without a preview: the old job's thumbnail is not shown for it.
    await _push_job(client, key, "cube.gcode")
    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert "slicer's preview" not in page and "Latest webcam snapshot" in page


async def test_pictures_are_the_owners_and_checked(client, herald):
    owner = await make_user()
    await make_user("eve@example.com")
    printer, key = await make_printer(herald, owner)
    for body, kind, status in ((b"GIF89a....", "webcam", 415), (png(), "poster", 400),
                               (b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024), "webcam", 413)):
        response = await client.put(f"/api/v1/printer/pictures/{kind}", data=body,
                                    headers=_auth(key, **{"Content-Type": "image/jpeg"}))
        assert response.status_code == status, (kind, status)
    assert (await client.put("/api/v1/printer/pictures/webcam", data=JPEG,
                             headers={"Authorization": "Bearer hpk_wrong"})).status_code == 401
    await client.put("/api/v1/printer/pictures/webcam", data=JPEG, headers=_auth(key))
    await login(client, "eve@example.com")
    assert (await client.get(f"/printers/{printer.id}/pictures/webcam")).status_code == 404
    # Removing the printer removes its pictures.
    from appliance.printers.manage import delete_printers

    folder = herald.settings.data_path / "pictures" / printer.id
    assert folder.is_dir()
    await delete_printers(herald, [printer.id])
    assert not folder.exists()


def _file(name: str, data: bytes, media_type: str):
    from werkzeug.datastructures import FileStorage

    return FileStorage(io.BytesIO(data), filename=name, content_type=media_type)
