"""A start after a crash puts back what the dead process held, and says so in the log."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.app import RUNNING_MARKER, create_app
from appliance.core.herald import herald_of
from appliance.printers.models import Printer
from appliance.webhooks import targets as webhook_targets
from appliance.webhooks.models import Delivery
from tests.support.users import make_user
from tests.support.webhooks import store_event


def own_app(settings, clock):
    EXECUTOR_CACHE.clear()  # Tortoise's statement cache is per backend
    return create_app(settings, clock=clock)


async def test_a_start_after_a_crash_requeues_leased_deliveries_and_logs_it(settings, clock, caplog):
    first = own_app(settings, clock)
    async with first.test_app():
        herald = herald_of(first)
        owner = await make_user("admin@example.com", admin=True)
        printer = await Printer.create(id=str(uuid.uuid4()), owner=owner, name="Prusa", key_hash="k" * 64,
                                       status={"state": "Operational", "state_id": "operational"},
                                       status_updated_at=clock.now())
        await webhook_targets.create_target(herald, owner, {
            "name": "hook", "url": "http://127.0.0.1:9/hook", "events": ["print.started"]})
        await store_event(herald, printer, "print.started")
        assert (settings.data_path / RUNNING_MARKER).exists()
    assert not (settings.data_path / RUNNING_MARKER).exists()  # a clean stop

    # Then a process is killed while it delivers, its lease running (a minute).
    lease_end = clock.now() + timedelta(seconds=60)
    second = own_app(settings, clock)
    async with second.test_app():
        await Delivery.all().update(status="in_flight", locked_until=lease_end, claimed_by="killed-1")
    (settings.data_path / RUNNING_MARKER).write_text("4242\n")  # it never stopped cleanly

    if not settings.is_sqlite:
        clock.advance(120)  # PostgreSQL: other processes may serve, only an expired lease is requeued
    caplog.set_level(logging.INFO, logger="appliance.app")
    third = own_app(settings, clock)
    async with third.test_app():
        (delivery,) = await Delivery.all()
        assert delivery.claimed_by != "killed-1"  # back in the queue (perhaps claimed anew since)
    text = caplog.text
    assert "Recovered after an unclean stop: 1 webhook deliveries left in flight went back to the queue" in text
    assert f"(ids {delivery.id})" in text
    assert "the last status of 1 printers restored" in text
