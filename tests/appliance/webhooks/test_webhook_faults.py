"""Fault test: SIGKILL Herald while webhook deliveries are in flight, then recover.

Runs the real ``herald serve`` (one process on SQLite, two sharing PostgreSQL),
with a real receiver on 127.0.0.1 that is slow while Herald is killed, down
while Herald restarts, then up again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.core.clock import Clock
from appliance.core.db import tortoise_config
from appliance.core.herald import Hooks
from appliance.core.secrets import SecretBox
from appliance.core.settings import Settings
from appliance.printers.models import Printer
from appliance.webhooks import enqueue as webhook_enqueue
from appliance.webhooks import targets as service
from appliance.webhooks.models import Delivery
from tests.conftest import free_port
from tests.support.server import LiveServer
from tests.support.users import make_user
from tests.support.webhooks import Receiver, store_event

EVENTS = 40
TARGETS = 2
ENV = {
    # The held answers below stay in flight until the kill: the timeout only has to be longer
    # than the test takes to kill Herald on a busy machine, and the lease longer than it.
    "HERALD_WEBHOOK_TIMEOUT": "10",
    "HERALD_WEBHOOK_LEASE": "15",
    "HERALD_WEBHOOK_POLL_INTERVAL": "0.2",
    "HERALD_WEBHOOK_CONCURRENCY": "4",
    "HERALD_WEBHOOK_RETRY_SCHEDULE": "0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
}


async def _with_db(settings: Settings, job):
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(settings))
    try:
        return await job()
    finally:
        await Tortoise.close_connections()


async def _seed(settings: Settings, receiver_port: int) -> None:
    async def job():
        herald = SimpleNamespace(settings=settings, clock=Clock(), secret_box=SecretBox.from_data_dir(settings.data_path),
                                 hooks=Hooks())
        herald.hooks.event_listeners.append(lambda e, p, c: webhook_enqueue.enqueue_event(herald, e, p, c))
        owner = await make_user("admin@example.com", admin=True)
        printer = await Printer.create(id=str(uuid.uuid4()), owner=owner, name="MK4")
        for n in range(TARGETS):
            await service.create_target(herald, owner, {
                "name": f"t{n}", "url": f"http://127.0.0.1:{receiver_port}/t{n}", "events": ["print.progress"],
                "progress_step": 1, "body": json.dumps({"event": "@eventId", "seq": "@sequence"})})
        for percent in range(1, EVENTS + 1):
            await store_event(herald, printer, "print.progress", payload={"progress": percent})

    await _with_db(settings, job)


async def _counts(settings: Settings, killed_pid: int) -> tuple[int, dict[str, int]]:
    async def job():
        rows = await Delivery.all().values("status", "claimed_by")
        statuses: dict[str, int] = defaultdict(int)
        for row in rows:
            statuses[row["status"]] += 1
        in_flight = sum(1 for r in rows if r["status"] == "in_flight"
                        and (r["claimed_by"] or "").split(":")[1:2] == [str(killed_pid)])
        return in_flight, dict(statuses)

    return await _with_db(settings, job)


async def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sigkill_with_deliveries_in_flight(backend, database_url, tmp_path: Path):
    # SQLite allows one writer process; on PostgreSQL two Herald processes share the queue.
    processes = 1 if backend == "sqlite" else 2
    settings = Settings.build(data_dir=str(tmp_path), database_url=database_url)
    port = free_port()
    await _seed(settings, port)
    expected = {(f"/t{n}", seq) for n in range(TARGETS) for seq in range(1, EVENTS + 1)}

    # Slow answers at first; then the receiver holds every answer, so the deliveries it holds
    # are in flight when Herald dies (known by the requests held, not by timing).
    holding = {"on": False, "held": 0}
    release = asyncio.Event()

    async def slow(request, received):
        if holding["on"]:
            holding["held"] += 1
            await release.wait()
        else:
            await asyncio.sleep(0.6)

    first = await Receiver(port=port, respond=slow).start()
    env = {**ENV, "HERALD_DATABASE_URL": database_url}
    servers = [LiveServer(tmp_path, free_port(), env=env, log_path=tmp_path / f"server{i}.log")
               for i in range(processes)]
    for server in servers:
        server.start()
    try:
        await _wait_for(lambda: len(first.requests) >= 6, 120, "the first deliveries")
        holding["on"] = True
        await _wait_for(lambda: holding["held"] >= 1, 120, "a delivery held in flight")
        victim = servers[0]
        pid = victim.process.pid
        victim.kill()
        release.set()  # answers to a dead Herald (or, on PostgreSQL, to the other process)
        await first.stop()  # the receiver goes down with Herald
        in_flight, statuses = await _counts(settings, pid)
        assert in_flight > 0, statuses  # the kill caught deliveries in flight
        victim.start()  # back up while the receiver is down: attempts fail and are retried
        await asyncio.sleep(1.5)
        second = await Receiver(port=port).start()
        try:
            got = lambda: {(r.path, json.loads(r.body)["seq"]) for r in first.requests + second.requests}  # noqa: E731
            await _wait_for(lambda: got() >= expected, 180, "every event at the receiver")
            await asyncio.sleep(0.5)
        finally:
            await second.stop()
    finally:
        for server in servers:
            server.stop()
    received = first.requests + second.requests
    by_event: dict[tuple[str, int], list] = defaultdict(list)
    for request in received:
        by_event[(request.path, json.loads(request.body)["seq"])].append(request)
    assert set(by_event) == expected
    for copies in by_event.values():
        assert len({c.webhook_id for c in copies}) == 1  # repeats carry the first attempt's id ...
        assert len({c.body for c in copies}) == 1  # ... and body
    repeats = len(received) - len(by_event)
    assert repeats <= in_flight, (repeats, in_flight)
    print(f"{backend}: {processes} process(es), {in_flight} in flight at the kill, {repeats} repeats")
    _, statuses = await _counts(settings, pid)
    assert statuses == {"delivered": TARGETS * EVENTS}
