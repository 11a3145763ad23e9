#!/usr/bin/env python3
"""Soak Herald: many simulated printers, Alexa, flaky webhooks, and a SIGKILL every so often.

    .venv/bin/python scripts/soak.py [--database sqlite|postgres] [--seconds 600] [--printers 1000]
                                     [--kill-every 60] [--compress 5] [--fail-rate 0.2] [--write-docs]

- ``herald serve`` runs in a subprocess on 127.0.0.1 (SQLite in a temporary data directory,
  or a fresh PostgreSQL database on 127.0.0.1:5432 that is dropped afterwards).
- Every simulated printer behaves as the plugin does, with time compressed ``--compress``
  times: a status at every change, every 30 s while printing and 60 s while idle; prints
  of ``--print-minutes`` with started, progress at every whole percent and done; its events
  wait in its own outbox and are resent until Herald answers 202 (the plugin's contract).
- Alexa asks for the status (unsigned requests: verification is off for the soak).
- One webhook target gets every printer's print.started and print.done; the receiver, in
  its own process, answers 500 to ``--fail-rate`` of the requests (and its time of every
  2xx answer is kept per webhook-id).
- Herald is SIGKILLed every ``--kill-every`` seconds and started again at once.

At the end the receiver stops failing, the queue drains, Herald stops cleanly, and the
database is read directly:

- events lost: events Herald answered 202 to that are not stored (must be 0);
- duplicate acknowledged deliveries: a 2xx answer to a webhook-id received after Herald
  had recorded that delivery as delivered (must be 0). Deliveries sent again because
  Herald was killed between the receiver's answer and recording it are counted apart
  (at-least-once, expected);
- statuses (the contract: no status older than the last flush is lost, docs/printers.md):
  right after each SIGKILL the database is read before Herald starts again. The newest
  ``status_updated_at`` stored is when the last committed flush's newest status was
  accepted, so every status of this lifetime acknowledged (204) before that moment was in
  that flush or an earlier one: each printer's stored status must be that one or a later
  one. Statuses acknowledged after it were still in memory and may be lost (counted, with
  the age of the last flush at each kill). After the final clean stop every printer's
  stored status must be the last one acknowledged since the last kill;
- memory: Herald's resident memory every second and before each kill; growth from the first
  lifetime that began after a SIGKILL to the last, each read over the same ages
  (compare_lifetimes), must stay under 10 %.

Bounded: it stops by itself after ``--seconds`` plus the drain; every process it starts
is ended by its id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_HOST, PG_PORT, PG_USER, PG_ADMIN_DB = "127.0.0.1", 5432, "postgres", "test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compare_lifetimes(lifetimes: list[dict]) -> tuple[int, int, float, list[int]]:
    """The baseline and the last lifetime's largest resident set, each over the same ages.

    A process takes memory while it warms up (prepared statements, the key cache, the first
    requests' allocations), and the last lifetime is the longest (it includes the final drain):
    comparing each lifetime's largest sample over its whole life counted warm-up as growth. So
    each lifetime is read only up to the age the shorter of the two reached.

    The baseline is the first lifetime that began after a SIGKILL (the second), not the very
    first: every process is a new one, so what differs between lifetimes is how they start.
    The first starts on an empty queue while the simulated printers arrive spread over their
    first cadence; every later one starts with the whole fleet checking in at once, the
    requests the kill cut short resent, and deliveries requeued: a higher peak of concurrent
    requests, whose allocations a Python process keeps (pymalloc arenas). Measured on
    PostgreSQL (docs/benchmarks.md, 2026-12-02): the first lifetime peaked at 122 MiB, the
    eight after kills at 125 to 157 MiB with no trend. Growth is what this looks for, so it
    compares lifetimes that started alike. Returns (baseline, last, that age, every lifetime's
    peak over it); with fewer than three lifetimes the baseline is the first.
    """
    if not lifetimes:
        return 0, 0, 0.0, []
    first, last = (lifetimes[1] if len(lifetimes) >= 3 else lifetimes[0]), lifetimes[-1]
    age = min(max(first["ages"]), max(last["ages"]))

    def peak(lifetime: dict) -> int:
        within = [rss for rss, at in zip(lifetime["rss"], lifetime["ages"], strict=True) if at <= age + 0.5]
        return max(within or lifetime["rss"][:1])

    return peak(first), peak(last), age, [peak(lifetime) for lifetime in lifetimes]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


# --- the webhook receiver (own process) -------------------------------------------------------


def _receiver_main(port_queue, fail_rate: float) -> None:
    from aiohttp import web

    state = {"fail_rate": fail_rate, "acks": {}, "requests": 0, "failed": 0}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        state["requests"] += 1
        if random.random() < state["fail_rate"]:
            state["failed"] += 1
            return web.Response(status=500, text="flaky on purpose")
        state["acks"].setdefault(request.headers.get("webhook-id", "?"), []).append(time.time())
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state)

    async def configure(request: web.Request) -> web.Response:
        state["fail_rate"] = float((await request.json())["fail_rate"])
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/configure", configure)
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the database -------------------------------------------------------------------------------


async def create_pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"herald_soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def drop_pg_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def seed(data_dir: Path, database_url: str, printers: int, hook_url: str) -> list[tuple[str, str]]:
    """An admin, ``printers`` linked printers and one webhook target; returns (id, key) pairs."""
    from types import SimpleNamespace

    from appliance.accounts.models import User
    from appliance.core.clock import Clock
    from appliance.core.db import close_database, open_database
    from appliance.core.herald import Hooks
    from appliance.core.secrets import (
        PRINTER_KEY_PREFIX,
        SecretBox,
        hash_password,
        new_token,
        token_hash,
    )
    from appliance.core.settings import Settings
    from appliance.printers.models import Printer
    from appliance.webhooks import targets

    settings = Settings.build(data_dir=str(data_dir), database_url=database_url)
    await open_database(settings)
    try:
        herald = SimpleNamespace(settings=settings, clock=Clock(), hooks=Hooks(),
                                 secret_box=SecretBox.from_data_dir(settings.data_path))
        owner = await User.create(email="soak@example.com", password_hash=hash_password("soak password 1"),
                                  is_admin=True, email_verified_at=datetime.now(UTC))
        pairs = [(str(uuid.uuid4()), new_token(PRINTER_KEY_PREFIX)) for _ in range(printers)]
        now = datetime.now(UTC)
        await Printer.bulk_create([Printer(id=pid, owner_id=owner.id, name=f"Soak {n:04d}", key_hash=token_hash(key),
                                           linked_at=now) for n, (pid, key) in enumerate(pairs)], batch_size=1000)
        await targets.create_target(herald, owner, {"name": "soak", "url": hook_url,
                                                    "events": ["print.started", "print.done"]})
    finally:
        await close_database()
    return pairs


def read_results(database_url: str, data_dir: Path) -> dict:
    """Events, deliveries and statuses as stored, read straight from the database."""
    if database_url.startswith("postgres"):
        import asyncpg

        async def pg() -> dict:
            conn = await asyncpg.connect(database_url)
            try:
                events = [r[0] for r in await conn.fetch("SELECT event_id FROM events")]
                deliveries = [tuple(r) for r in await conn.fetch(
                    "SELECT webhook_id, status, finished_at FROM webhook_deliveries")]
                statuses = {r[0]: r[1] for r in await conn.fetch("SELECT id, status FROM printers")}
            finally:
                await conn.close()
            return {"events": events, "deliveries": deliveries,
                    "statuses": {k: json.loads(v) if isinstance(v, str) else v for k, v in statuses.items()}}

        return asyncio.run(pg())
    conn = sqlite3.connect(data_dir / "herald.sqlite3")
    try:
        events = [r[0] for r in conn.execute("SELECT event_id FROM events")]
        deliveries = []
        for webhook_id, status, finished in conn.execute(
                "SELECT webhook_id, status, finished_at FROM webhook_deliveries"):
            moment = datetime.fromisoformat(finished) if finished else None
            if moment is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            deliveries.append((webhook_id, status, moment))
        statuses = {pid: json.loads(status) if status else None
                    for pid, status in conn.execute("SELECT id, status FROM printers")}
    finally:
        conn.close()
    return {"events": events, "deliveries": deliveries, "statuses": statuses}


def read_statuses(database_url: str, data_dir: Path) -> dict:
    """Each printer's stored status as (marker, status_updated_at as a Unix time), or (None, None)."""
    def marker(status):
        if isinstance(status, str):
            status = json.loads(status)
        return (((status or {}).get("temperatures") or {}).get("tool0") or {}).get("actual")

    if database_url.startswith("postgres"):
        import asyncpg

        async def pg() -> list:
            conn = await asyncpg.connect(database_url)
            try:
                return [tuple(r) for r in await conn.fetch("SELECT id, status, status_updated_at FROM printers")]
            finally:
                await conn.close()

        rows = asyncio.run(pg())
    else:
        conn = sqlite3.connect(data_dir / "herald.sqlite3", timeout=30)
        try:
            rows = list(conn.execute("SELECT id, status, status_updated_at FROM printers"))
        finally:
            conn.close()
    result = {}
    for pid, status, updated in rows:
        if isinstance(updated, str):
            updated = datetime.fromisoformat(updated)
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        result[pid] = (marker(status), updated.timestamp() if updated is not None else None)
    return result


def _position(sent: list, marker) -> int:
    """Where the stored status is in a printer's sent statuses (-1: none stored)."""
    if marker is None:
        return -1
    for index in range(len(sent) - 1, -1, -1):
        if sent[index][0] == marker:
            return index
    return -1


def _last_acked(sent: list, before: float, after: float = float("-inf")) -> int:
    """The position of the last status acknowledged in (after, before), or -1."""
    for index in range(len(sent) - 1, -1, -1):
        acked = sent[index][2]
        if acked is not None and after < acked < before:
            return index
    return -1


def check_kill(sent_by_printer: dict, stored: dict, killed_at: float, previous: dict | None = None) -> dict:
    """Right after a SIGKILL: statuses older than the last flush that the database lacks.

    Only this lifetime's statuses (acknowledged after the previous kill) are held to this
    lifetime's last flush: one acknowledged before an earlier kill and lost there was
    allowed to be lost, and stays so. What an earlier kill required is still required.
    """
    written = [updated for _, updated in stored.values() if updated is not None]
    cutoff = max(written, default=float("-inf"))  # the newest status of the last committed flush
    since = previous["killed_at"] if previous else float("-inf")
    before = previous["required"] if previous else {}
    lost, unflushed, required = [], 0, {}
    for pid, sent in sent_by_printer.items():
        sent = [record for record in sent if record[1] < killed_at]
        need = max(_last_acked(sent, before=cutoff, after=since), before.get(pid, -1))
        required[pid] = need
        have = _position(sent, stored.get(pid, (None, None))[0])
        if have < need:
            lost.append(pid)
        elif have < _last_acked(sent, before=killed_at):
            unflushed += 1  # acknowledged after the last flush began: allowed to be lost
    samples = [{"printer": pid, "cutoff": cutoff, "required": sent_by_printer[pid][required[pid]],
                "stored": stored.get(pid), "sent": [r for r in sent_by_printer[pid] if r[1] < killed_at][-4:]}
               for pid in lost[:3]]
    return {"killed_at": killed_at, "last_flush_age": round(killed_at - cutoff, 2) if written else None,
            "lost": lost, "unflushed": unflushed, "required": required, "samples": samples}


def check_final(tally: Tally, stored: dict) -> dict:
    """After the clean stop: every status acknowledged since the last kill (the clean stop
    flushes them all), and whatever the last kill's check required."""
    last = tally.kill_checks[-1] if tally.kill_checks else {"killed_at": float("-inf"), "required": {}}
    lost, exact = [], 0
    for pid, sent in tally.sent.items():
        need = max(_last_acked(sent, before=float("inf"), after=last["killed_at"]), last["required"].get(pid, -1))
        have = _position(sent, stored.get(pid, (None, None))[0])
        if have < need:
            lost.append(pid)
        if have >= 0 and have == _last_acked(sent, before=float("inf")):
            exact += 1
    return {"lost": lost, "exact": exact}


# --- Herald ---------------------------------------------------------------------------------------


@dataclass
class Herald:
    data_dir: Path
    port: int
    database_url: str
    env_extra: dict
    process: subprocess.Popen | None = None
    lifetimes: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ_for_cli(self) -> dict:
        """The environment ``herald`` commands of this instance run with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(HERALD_HOST="127.0.0.1", HERALD_PORT=str(self.port), HERALD_DATA_DIR=str(self.data_dir),
                   HERALD_DATABASE_URL=self.database_url,
                   HERALD_LOG_LEVEL=os.environ.get("SOAK_HERALD_LOG_LEVEL", "WARNING"), **self.env_extra)
        return env

    def start(self) -> None:
        env = self.environ_for_cli()
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - kept for the child's lifetime
        self.process = subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started = time.monotonic()
        import urllib.request

        while time.monotonic() - started < 60:
            if self.process.poll() is not None:
                raise SystemExit(f"herald serve exited:\n{(self.data_dir / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        self.lifetimes.append({"started": time.monotonic(), "pid": self.process.pid,
                                               "start_seconds": time.monotonic() - started, "rss": [], "ages": []})
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("herald serve did not answer /healthz within 60 s")

    def sample_memory(self) -> None:
        if self.process is not None and self.process.poll() is None and self.lifetimes:
            lifetime = self.lifetimes[-1]
            lifetime["rss"].append(rss_kib(self.process.pid))
            lifetime["ages"].append(time.monotonic() - lifetime["started"])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.sample_memory()
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# --- the simulated printers ----------------------------------------------------------------------


@dataclass
class Tally:
    acked_events: set = field(default_factory=set)
    event_retries: int = 0
    statuses_acked: int = 0
    status_failures: int = 0
    # printer id -> every status sent, in order: [marker, sent (time.time()), acknowledged (time.time()) or None];
    # the marker (tool0's actual temperature, a random float) tells which one the database holds.
    sent: dict = field(default_factory=dict)
    alexa_ok: int = 0
    alexa_failed: int = 0
    alexa_wrong: int = 0
    kills: int = 0
    answers: dict = field(default_factory=dict)  # "PUT 204", "POST 429", "error ..." -> count
    kill_at: list = field(default_factory=list)
    kill_checks: list = field(default_factory=list)  # per SIGKILL: what the database held (check_kill)

    def count(self, what: str) -> None:
        self.answers[what] = self.answers.get(what, 0) + 1


async def printer_loop(session, herald: Herald, pid: str, key: str, args, tally: Tally, stop: asyncio.Event) -> None:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"}
    rng = random.Random(pid)
    outbox: list[dict] = []
    scale = 1.0 / args.compress
    state, progress, last_job = "operational", 0, None
    next_print = time.monotonic() + rng.uniform(0, args.idle_minutes * 60) * scale
    next_status = time.monotonic() + rng.uniform(0, 60) * scale
    next_percent = 0.0
    changed = True
    while not stop.is_set() or outbox:
        now = time.monotonic()
        if stop.is_set():
            pass  # no new work: only what waits in the outbox goes out
        elif state == "operational" and now >= next_print:
            state, progress = "printing", 0
            outbox.append(_event("print.started", {"name": f"{pid[:8]}.gcode"}))
            next_percent = now + args.print_minutes * 60 * scale / 100
            changed = True
        elif state == "printing" and now >= next_percent:
            progress += 1
            if progress < 100:
                outbox.append(_event("print.progress", {"progress": progress}))
                next_percent = now + args.print_minutes * 60 * scale / 100
            else:
                duration = args.print_minutes * 60
                outbox.append(_event("print.done", {"name": f"{pid[:8]}.gcode", "time": duration}))
                state, last_job = "operational", {"file": f"{pid[:8]}.gcode", "duration": duration,
                                                  "result": "completed"}
                next_print = now + rng.uniform(0.5, 1.5) * args.idle_minutes * 60 * scale
            changed = True
        # The plugin's publisher: the outbox in order, then the status.
        try:
            while outbox:
                async with session.post(herald.url + "/api/v1/printer/events", json=outbox[0],
                                        headers=headers) as response:
                    tally.count(f"POST {response.status}")
                    if response.status != 202:
                        tally.event_retries += 1
                        break
                tally.acked_events.add(outbox.pop(0)["id"])
            if (changed or now >= next_status) and not stop.is_set():
                status = {"state": "Printing" if state == "printing" else "Operational", "state_id": state,
                          "temperatures": {"tool0": {"actual": 200.0 + rng.random(), "target": 210.0}},
                          "job": {"file": f"{pid[:8]}.gcode" if state == "printing" else None,
                                  "progress": float(progress) if state == "printing" else None},
                          "last_job": last_job}
                record = [status["temperatures"]["tool0"]["actual"], time.time(), None]
                tally.sent.setdefault(pid, []).append(record)
                async with session.put(herald.url + "/api/v1/printer/status", json=status,
                                       headers=headers) as response:
                    tally.count(f"PUT {response.status}")
                    if response.status == 204:
                        record[2] = time.time()
                        tally.statuses_acked += 1
                        changed = False
                        next_status = now + (30 if state == "printing" else 60) * scale
                    else:
                        tally.status_failures += 1
        except (TimeoutError, aiohttp.ClientError, OSError):
            tally.event_retries += 1
            await asyncio.sleep(rng.uniform(0.2, 0.6))  # Herald is restarting
            continue
        await asyncio.sleep(min(0.5, max(0.02, min(next_percent if state == "printing" else next_print,
                                                     next_status) - time.monotonic())))


def _event(event_type: str, payload: dict) -> dict:
    return {"id": str(uuid.uuid4()), "type": event_type,
            "occurred_at": datetime.now(UTC).astimezone().isoformat(timespec="milliseconds"),
            "payload": payload, "printer_data": {"state": {"text": "Printing"}}}


async def alexa_loop(session, herald: Herald, tally: Tally, stop: asyncio.Event, every: float) -> None:
    import aiohttp

    from tests.support.alexa import SKILL_ID, envelope

    while not stop.is_set():
        body = envelope(request_type="LaunchRequest", skill_id=SKILL_ID, timestamp=datetime.now(UTC))
        try:
            async with session.post(herald.url + "/alexa", json=body) as response:
                answer = await response.json(content_type=None)
                if response.status == 200 and "outputSpeech" in json.dumps(answer):
                    tally.alexa_ok += 1
                else:
                    tally.alexa_wrong += 1
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            tally.alexa_failed += 1
        await asyncio.sleep(every)


async def drive(herald: Herald, pairs, args, tally: Tally) -> None:
    import aiohttp

    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
        tasks = [asyncio.create_task(printer_loop(session, herald, pid, key, args, tally, stop))
                 for pid, key in pairs]
        tasks.append(asyncio.create_task(alexa_loop(session, herald, tally, stop, args.alexa_every)))
        started = time.monotonic()
        next_kill = started + args.kill_every
        loop = asyncio.get_running_loop()
        while time.monotonic() - started < args.seconds:
            await asyncio.sleep(1.0)
            herald.sample_memory()
            # No kill near the end: the last statuses must come after the last restart.
            if time.monotonic() >= next_kill and time.monotonic() - started < args.seconds - 25:
                await loop.run_in_executor(None, herald.kill)
                killed_at = time.time()
                tally.kills += 1
                tally.kill_at.append(time.monotonic())
                # What survived, read before Herald starts again (no status can be acked meanwhile).
                stored = await loop.run_in_executor(None, read_statuses, herald.database_url, herald.data_dir)
                tally.kill_checks.append(check_kill(tally.sent, stored, killed_at,
                                                    tally.kill_checks[-1] if tally.kill_checks else None))
                await loop.run_in_executor(None, herald.start)
                next_kill = time.monotonic() + args.kill_every
        # Stop making new work; let every printer's outbox empty (as the plugin would).
        stop.set()
        # Each printer empties its outbox first, as the plugin would.
        await asyncio.gather(*tasks, return_exceptions=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--printers", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--compress", type=float, default=5, help="time compression of the plugin's cadence")
    parser.add_argument("--print-minutes", type=float, default=30, help="a print's length, uncompressed")
    parser.add_argument("--idle-minutes", type=float, default=20, help="the pause between prints, uncompressed")
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--alexa-every", type=float, default=0.25)
    parser.add_argument("--write-docs", action="store_true", help="record the figures in docs/benchmarks.md")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep Herald's data directory (log, database)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.write_docs:
        write_docs(report)
    return 0 if report["passed"] else 1


def run(args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    receiver = ctx.Process(target=_receiver_main, args=(ports, args.fail_rate), daemon=True)
    receiver.start()
    hook_base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    data_dir = Path(tempfile.mkdtemp(prefix="herald-soak-"))
    pg_name = None
    herald = None
    try:
        if args.database == "postgres":
            pg_name, database_url = asyncio.run(create_pg_database())
        else:
            database_url = f"sqlite://{data_dir / 'herald.sqlite3'}"
        from tests.support.alexa import SKILL_ID

        herald = Herald(data_dir, free_port(), database_url, {
            "HERALD_ALEXA_VERIFY_REQUESTS": "false", "HERALD_ALEXA_SINGLE_OWNER": "true",
            "HERALD_ALEXA_SKILL_ID": SKILL_ID, "HERALD_WEBHOOK_ALLOW_PRIVATE": "true",
            "HERALD_WEBHOOK_RETRY_SCHEDULE": "1,1,2,2,3,3,5,5,8,8,13,13,20,20,30,30",
            "HERALD_WEBHOOK_TIMEOUT": "3",
            # Every simulated printer (and Alexa) comes from 127.0.0.1 here, where real ones each
            # have an address of their own: the per-address cap on unfinished bodies (32,
            # core/slowbodies.py) would otherwise answer the load generator 429.
            "HERALD_UPLOADS_PER_CLIENT": "100000",
        })
        # Migrations first (herald serve would do it too), then the seed.
        from appliance.core.db import apply_migrations
        from appliance.core.settings import Settings

        asyncio.run(apply_migrations(Settings.build(data_dir=str(data_dir), database_url=database_url)))
        pairs = asyncio.run(seed(data_dir, database_url, args.printers, hook_base + "/hook"))
        herald.start()
        tally = Tally()
        began = time.monotonic()
        asyncio.run(drive(herald, pairs, args, tally))
        load_seconds = time.monotonic() - began
        # Drain: the receiver stops failing, every delivery reaches delivered (or failed).
        _post_json(hook_base + "/configure", {"fail_rate": 0.0})
        drained_in = _drain(herald, database_url, data_dir, timeout=120)
        herald.stop()
        stored = read_results(database_url, data_dir)
        stored["markers"] = read_statuses(database_url, data_dir)
        acks = json.loads(_get(hook_base + "/stats"))
    finally:
        if herald is not None:
            herald.stop()
        if receiver.is_alive():
            receiver.terminate()
            receiver.join(10)
        if pg_name:
            asyncio.run(drop_pg_database(pg_name))
        if args.keep:
            print(f"Herald's data directory (log, database) is kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return _report(args, tally, stored, acks, herald, load_seconds, drained_in)


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def _post_json(url: str, body: dict) -> None:
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):
        pass


def _drain(herald: Herald, database_url: str, data_dir: Path, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pending = _count_unfinished(database_url, data_dir)
        if pending == 0:
            return time.monotonic() - started
        time.sleep(1.0)
    return None


def _count_unfinished(database_url: str, data_dir: Path) -> int:
    query = "SELECT COUNT(*) FROM webhook_deliveries WHERE status IN ('pending', 'in_flight')"
    if database_url.startswith("postgres"):
        import asyncpg

        async def pg() -> int:
            conn = await asyncpg.connect(database_url)
            try:
                return int(await conn.fetchval(query))
            finally:
                await conn.close()

        return asyncio.run(pg())
    conn = sqlite3.connect(data_dir / "herald.sqlite3", timeout=10)
    try:
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def _report(args, tally: Tally, stored: dict, acks: dict, herald: Herald, load_seconds: float,
            drained_in: float | None) -> dict:
    stored_events = set(stored["events"])
    lost = tally.acked_events - stored_events
    finished = {wid: when for wid, status, when in stored["deliveries"] if status == "delivered"}
    duplicates_after_recorded = 0
    resent_after_kill = 0
    samples = []
    for wid, times in acks["acks"].items():
        if len(times) < 2:
            continue
        recorded = finished.get(wid)
        later = [t for t in sorted(times)[1:]]
        if recorded is not None and any(t > recorded.timestamp() + 0.001 for t in later):
            duplicates_after_recorded += 1
            samples.append({"webhook_id": wid, "acks": sorted(times), "recorded": recorded.timestamp()})
        else:
            resent_after_kill += 1
    final = check_final(tally, stored["markers"])
    lost_at_kills = sum(len(check["lost"]) for check in tally.kill_checks)
    ages = sorted(check["last_flush_age"] for check in tally.kill_checks if check["last_flush_age"] is not None)
    lifetimes = [lt for lt in herald.lifetimes if lt["rss"]]
    first_rss, last_rss, compared_age, peaks = compare_lifetimes(lifetimes)
    growth = (last_rss / first_rss - 1.0) if first_rss else 0.0
    restarts = [lt["start_seconds"] for lt in herald.lifetimes[1:]]
    report = {
        "database": args.database, "printers": args.printers, "seconds": round(load_seconds, 1),
        "compress": args.compress, "kills": tally.kills, "fail_rate": args.fail_rate,
        "events_acknowledged": len(tally.acked_events), "events_stored": len(stored_events),
        "events_lost": len(lost), "event_resends": tally.event_retries,
        "statuses_acknowledged": tally.statuses_acked,
        "statuses_match": final["exact"], "statuses_checked": len(tally.sent),
        "statuses_lost_at_kills": lost_at_kills, "statuses_lost_at_the_end": len(final["lost"]),
        "statuses_lost": lost_at_kills + len(final["lost"]),
        "statuses_unflushed_at_kills": sum(check["unflushed"] for check in tally.kill_checks),
        "last_flush_age_at_kills": ages,
        "kill_samples": [sample for check in tally.kill_checks for sample in check["samples"]][:6],
        "status_samples": [{"printer": pid, "sent": tally.sent[pid][-3:], "stored": stored["markers"].get(pid)}
                           for pid in final["lost"][:2]],
        "deliveries": len(stored["deliveries"]), "delivered": len(finished),
        "receiver_requests": acks["requests"], "receiver_failed_on_purpose": acks["failed"],
        "duplicate_acknowledged_deliveries": duplicates_after_recorded,
        "resent_after_a_kill": resent_after_kill,
        "duplicate_samples": samples[:5],
        "answers": tally.answers,
        "drained_in_seconds": None if drained_in is None else round(drained_in, 1),
        "alexa_ok": tally.alexa_ok, "alexa_failed_while_down": tally.alexa_failed, "alexa_wrong": tally.alexa_wrong,
        "rss_first_lifetime_kib": peaks[0] if peaks else 0,
        "rss_first_kib": first_rss, "rss_last_kib": last_rss, "rss_growth": round(growth, 3),
        "rss_compared_at_age_s": round(compared_age, 1), "rss_peak_per_lifetime_kib": peaks,
        "restart_seconds_median": round(sorted(restarts)[len(restarts) // 2], 2) if restarts else None,
        "load": machine_load(),
    }
    report["passed"] = (report["events_lost"] == 0 and report["duplicate_acknowledged_deliveries"] == 0
                        and report["statuses_lost"] == 0
                        and report["drained_in_seconds"] is not None and report["alexa_wrong"] == 0
                        and report["rss_growth"] < 0.10)
    return report


def format_report(report: dict) -> str:
    return "\n".join(f"{key:>36}: {value}" for key, value in report.items())


def machine_load() -> str:
    """The 1-minute load average and the core count, as the docs' row notes them."""
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:
        return "unknown"


def write_docs(report: dict) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    heading = "## Soak (`scripts/soak.py`)"
    header = ("| date | database | printers | seconds | compress | kills | events acked / lost | "
              "deliveries / dup. acked / resent after kill | statuses lost (at kills + end) / unflushed at kills | "
              "last flush age at kills (s, max) | Alexa ok / down | RSS first lifetime; after a kill / last (MiB), growth | "
              "restart (s) | load at end | passed |")
    if heading not in text:
        text += f"\n{heading}\n\n{header}\n|{'---|' * header.count(' | ')}---|\n"
    ages = report["last_flush_age_at_kills"]
    row = (f"| {datetime.now(UTC):%Y-%m-%d} | {report['database']} | {report['printers']} | {report['seconds']} | "
           f"{report['compress']} | {report['kills']} | {report['events_acknowledged']} / {report['events_lost']} | "
           f"{report['deliveries']} / {report['duplicate_acknowledged_deliveries']} / {report['resent_after_a_kill']} | "
           f"{report['statuses_lost']} ({report['statuses_lost_at_kills']} + {report['statuses_lost_at_the_end']})"
           f" / {report['statuses_unflushed_at_kills']} | {max(ages) if ages else '-'} | "
           f"{report['alexa_ok']} / {report['alexa_failed_while_down']} | "
           f"{report['rss_first_lifetime_kib'] / 1024:.0f}; {report['rss_first_kib'] / 1024:.0f} / "
           f"{report['rss_last_kib'] / 1024:.0f}, "
           f"{report['rss_growth'] * 100:+.1f} % | "
           f"{report['restart_seconds_median']} | {report['load']} | {'yes' if report['passed'] else 'NO'} |")
    # Rows go right after the first table header of the soak section.
    head, _, tail = text.partition(heading)
    lines = tail.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    lines.insert(index + 1, row)
    path.write_text(head + heading + "\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
