"""What the webhook tests share: a real receiver on 127.0.0.1, an admin owner and a printer."""

from __future__ import annotations

import uuid

import pytest

from appliance.printers.models import Printer
from tests.support.users import make_user
from tests.support.webhooks import Receiver


@pytest.fixture
async def receiver():
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def owner(app):
    return await make_user("admin@example.com", admin=True)


@pytest.fixture
async def printer(owner):
    return await Printer.create(id=str(uuid.uuid4()), owner=owner, name="Prusa MK4")
