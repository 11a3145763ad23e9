#!/usr/bin/env python3
"""Benchmark Herald's webhook queue against a plain aiohttp client loop, in the same run.

    .venv/bin/python scripts/bench_webhooks.py [--events 20000] [--targets 50] [--database-url URL]

1. Throughput: EVENTS events spread over TARGETS targets (one printer per target)
   are stored with the worker stopped, then the worker is started and timed until
   the receiver has every request. The plain loop posts the same bodies to the same
   receiver with one sequential loop per target (the same shape: in order per
   target, TARGETS at once). The ratio Herald / plain loop is printed.
2. Delay: with the worker running and the queue not backed up, events are stored
   at a steady pace and the delay from the event's transaction committing to the
   receiver getting the request is measured (median and p99).

The receiver runs in its own process, so it does not share Herald's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# --- the receiver (own process) -----------------------------------------------------------


def _receiver_main(port_queue) -> None:
    from aiohttp import web

    state = {"count": 0, "delays": []}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        state["count"] += 1
        occurred = request.headers.get("herald-occurred-at")
        if occurred:
            state["delays"].append(now - datetime.fromisoformat(occurred).timestamp())
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state)

    async def reset(request: web.Request) -> web.Response:
        state["count"] = 0
        state["delays"] = []
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/reset", reset)
        app.router.add_route("*", "/hook/{n}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


class ReceiverClient:
    def __init__(self, session, url: str) -> None:
        self.session, self.url = session, url

    async def stats(self) -> dict:
        async with self.session.get(self.url + "/stats") as response:
            return await response.json()

    async def reset(self) -> None:
        async with self.session.post(self.url + "/reset") as response:
            await response.read()

    async def wait_count(self, count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if stats["count"] >= count:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit(f"receiver got {stats['count']} of {count} within {timeout} s")
            await asyncio.sleep(0.02)


# --- Herald side ------------------------------------------------------------------------------


async def store_event(herald, printer, n: int, connection) -> None:
    """Store one event and run the event listeners in its transaction (what the events API does)."""
    from tortoise.expressions import F

    from appliance.printers.models import Event, Printer

    await Printer.filter(id=printer.id).using_db(connection).update(event_sequence=F("event_sequence") + 1)
    printer.event_sequence += 1
    now = datetime.now(UTC)
    event = await Event.create(printer_id=printer.id, event_id=str(uuid.uuid4()), type="print.paused",
                               sequence=printer.event_sequence, occurred_at=now, received_at=now,
                               payload={"name": f"part{n}.gcode", "path": f"part{n}.gcode", "origin": "local"}, printer_data={}, using_db=connection)
    for listener in herald.hooks.event_listeners:
        await listener(event, printer, connection)


async def bench(args) -> None:
    import aiohttp
    from tortoise.transactions import in_transaction

    from appliance.accounts.models import User
    from appliance.core.clock import Clock
    from appliance.core.db import close_database, open_database
    from appliance.core.herald import Hooks
    from appliance.core.secrets import SecretBox
    from appliance.core.settings import Settings
    from appliance.printers.models import Printer
    from appliance.webhooks import enqueue as webhook_enqueue
    from appliance.webhooks import targets as service
    from appliance.webhooks.delivery import DeliveryWorker
    from appliance.webhooks.models import Delivery

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    receiver_process = ctx.Process(target=_receiver_main, args=(ports,), daemon=True)
    receiver_process.start()
    port = ports.get(timeout=30)
    base = f"http://127.0.0.1:{port}"

    data_dir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    settings = Settings.build(data_dir=str(data_dir), database_url=args.database_url or "",
                              webhook_concurrency=args.targets, webhook_poll_interval=1.0)
    await open_database(settings)
    herald = SimpleNamespace(settings=settings, clock=Clock(), secret_box=SecretBox.from_data_dir(data_dir),
                             hooks=Hooks())
    worker = DeliveryWorker(herald)
    herald.hooks.event_listeners.append(
        lambda e, p, c: webhook_enqueue.enqueue_event(herald, e, p, c, notify=worker.notify))
    owner = await User.create(email="bench@example.com", password_hash="x", is_admin=True)
    printers = []
    body = json.dumps({"topic": "@topic", "message": "@message", "extra": "@extra", "seq": "@sequence",
                       "printer": "@printer", "device": "@deviceIdentifier", "time": "@currentTime"})
    for n in range(args.targets):
        printer = await Printer.create(id=str(uuid.uuid4()), owner=owner, name=f"printer {n}")
        printers.append(printer)
        await service.create_target(herald, owner, {
            "name": f"bench {n}", "url": f"{base}/hook/{n}", "events": ["print.paused"],
            "printer_ids": [printer.id], "body": body, "device_identifier": f"dev{n}"})

    per_target = args.events // args.targets
    total = per_target * args.targets
    started = time.monotonic()
    chunk = 100
    # Store the backlog. One transaction per event would measure the events API rather
    # than the queue; a hundred events per transaction keeps this phase short.
    events = [(printer, n) for n in range(per_target) for printer in printers]
    for offset in range(0, len(events), chunk):
        async with in_transaction() as connection:
            for printer, n in events[offset:offset + chunk]:
                await store_event(herald, printer, n, connection)
    queued = await Delivery.all().count()
    enqueue_seconds = time.monotonic() - started

    async with aiohttp.ClientSession() as session:
        receiver = ReceiverClient(session, base)
        await receiver.reset()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.monotonic()
        run = asyncio.create_task(worker.run())
        t1 = await receiver.wait_count(queued, timeout=600)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        herald_rate = queued / (t1 - t0)

        # the same bodies, posted by a plain loop per target
        bodies = await Delivery.all().order_by("id").values("target_id", "url", "body", "headers")
        by_target: dict[int, list[dict]] = {}
        for row in bodies:
            by_target.setdefault(row["target_id"], []).append(row)
        await receiver.reset()

        async def plain(rows: list[dict]) -> None:
            for row in rows:
                data = json.dumps(row["body"], separators=(",", ":")).encode()
                async with session.post(row["url"], data=data, headers=row["headers"]) as response:
                    await response.read()

        t0 = time.monotonic()
        await asyncio.gather(*(plain(rows) for rows in by_target.values()))
        await receiver.wait_count(queued, timeout=600)
        plain_rate = queued / (time.monotonic() - t0)

        # delay when the queue is not backed up: a steady trickle of events
        await receiver.reset()
        count = args.delay_events
        interval = 1.0 / args.delay_rate
        next_at = time.monotonic()
        for n in range(count):
            printer = printers[n % len(printers)]
            async with in_transaction() as connection:
                await store_event(herald, printer, n, connection)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        expected = await Delivery.all().count() - queued
        await receiver.wait_count(expected, timeout=120)
        delays = sorted((await receiver.stats())["delays"])
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    await worker.close()
    await close_database()
    receiver_process.terminate()
    receiver_process.join(5)

    median = statistics.median(delays) * 1000
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
    database = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(f"database: {database}, targets: {args.targets}, deliveries: {queued} (of {total} events)")
    print(f"enqueue (100 events per transaction): {queued / enqueue_seconds:.0f} deliveries/s")
    print(f"Herald queue: {herald_rate:.0f} deliveries/s")
    print(f"plain aiohttp loop: {plain_rate:.0f} requests/s")
    print(f"ratio Herald / plain loop: {herald_rate / plain_rate:.2f}")
    print(f"accept-to-receive delay at {args.delay_rate:g} events/s ({len(delays)} deliveries): "
          f"median {median:.1f} ms, p99 {p99:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--delay-events", type=int, default=1000, help="events in the delay phase")
    parser.add_argument("--delay-rate", type=float, default=100.0, help="events per second in the delay phase")
    parser.add_argument("--profile", default="", help="write a cProfile of the queue phase to this file")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
