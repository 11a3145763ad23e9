#!/usr/bin/env python3
"""Benchmark status ingest: the real Herald under hypercorn vs a bare Quart app, same client.

Starts ``herald serve`` (one worker, SQLite, as a Raspberry Pi runs it) with 100
and then 10,000 linked printers, and a bare Quart app with one "hello" route
under the same hypercorn settings. Loads each with the same client and the same
request (``PUT /api/v1/printer/status`` with the contract's example body and a
printer key; the keys rotate over all printers) and prints:

- ingest requests/s as a ratio of the bare app's (target >= 0.6),
- p50/p99 latency of both,
- ingest throughput with 10,000 printers / with 100 (target >= 0.9),
- idle memory (RSS) of the server processes (target < 120 MiB).

All servers run side by side and the load alternates between them in rounds;
medians are reported, because other work on the machine drifts. The client is wrk (Debian package ``wrk``) when
installed, else a built-in aiohttp load generator (which needs more CPU itself,
so its ratios are less telling on a 2-core machine).

    .venv/bin/python scripts/bench_ingest.py              # about 3 minutes
    .venv/bin/python scripts/bench_ingest.py --rounds 1 --duration 1 --warmup 0 --printers 5 20   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATUS = {
    "state": "Printing", "state_id": "printing",
    "temperatures": {"tool0": {"actual": 210.1, "target": 210.0}, "bed": {"actual": 60.2, "target": 60.0}},
    "job": {"file": "benchy.gcode", "progress": 42.5, "print_time": 1234, "print_time_left": 2345, "z": 12.4},
    "last_job": {"file": "cube.gcode", "duration": 3600, "result": "completed"},
}

# The bare app: one route, the same hypercorn settings as `herald serve` (appliance/cli.py).
BARE_APP = textwrap.dedent('''
    import asyncio, signal, sys
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart, request

    app = Quart(__name__)

    @app.route("/api/v1/printer/status", methods=["GET", "PUT"])
    async def hello():
        await request.get_data()
        return "hello"

    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 10.0

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(main())
''')

WRK_SCRIPT = textwrap.dedent('''
    local keys = {}
    for line in io.lines(os.getenv("BENCH_KEYS")) do keys[#keys + 1] = line end
    local body = io.open(os.getenv("BENCH_BODY")):read("*a")
    local counter = 0
    local next_offset = 0
    -- Each thread starts elsewhere in the key list (its global "offset").
    setup = function(thread) thread:set("offset", next_offset); next_offset = next_offset + 7919 end
    request = function()
      counter = counter + 1
      local key = keys[((counter + (offset or 0)) % #keys) + 1]
      return wrk.format("PUT", "/api/v1/printer/status",
        {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
    end
''')


@dataclass
class Result:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us_per_request: float = float("nan")  # the server's CPU time per request served


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and its descendants, in seconds."""
    total, pending = 0.0, [pid]
    ticks = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status: the server answers
                return
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


async def seed(data_dir: Path, printers: int) -> list[str]:
    """A SQLite database with one user and ``printers`` linked printers; returns their keys."""
    from tortoise import Tortoise

    from appliance.accounts.models import User
    from appliance.core.db import open_database
    from appliance.core.secrets import PRINTER_KEY_PREFIX, hash_password, new_token, token_hash
    from appliance.core.settings import Settings
    from appliance.printers.models import Job, Printer

    settings = Settings.build(data_dir=str(data_dir))
    await open_database(settings)
    try:
        user = await User.create(email="bench@example.com", password_hash=hash_password("bench password 1"))
        keys = [new_token(PRINTER_KEY_PREFIX) for _ in range(printers)]
        # Printers of a running installation: linked, online, reported before, with a job history.
        now = datetime.now(UTC)
        rows = [Printer(id=str(uuid.uuid4()), owner_id=user.id, name=f"Printer {i}", key_hash=token_hash(key),
                        linked_at=now, online=True, last_seen_at=now, status=STATUS)
                for i, key in enumerate(keys)]
        await Printer.bulk_create(rows, batch_size=1000)
        last = STATUS["last_job"]
        await Job.bulk_create([Job(printer_id=row.id, file=last["file"], duration=last["duration"],
                                   result=last["result"], ended_at=now) for row in rows], batch_size=1000)
    finally:
        await Tortoise.close_connections()
    return keys


def start_herald(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATA_DIR=str(data_dir), HERALD_PORT=str(port), HERALD_HOST="127.0.0.1",
               HERALD_LOG_LEVEL="WARNING")
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def start_bare(work: Path, port: int) -> subprocess.Popen:
    script = work / "bare_app.py"
    script.write_text(BARE_APP)
    return subprocess.Popen([sys.executable, str(script), str(port)], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- load clients ----------------------------------------------------------------------------


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[unit]


def run_wrk(label: str, url: str, work: Path, keys: list[str], duration: float, connections: int,
            threads: int) -> Result:
    (work / "keys.txt").write_text("\n".join(keys) + "\n")
    (work / "body.json").write_text(json.dumps(STATUS))
    (work / "ingest.lua").write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_KEYS": str(work / "keys.txt"), "BENCH_BODY": str(work / "body.json")}
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
                          "--latency", "-s", str(work / "ingest.lua"), url],
                         capture_output=True, text=True, env=env, check=True).stdout
    if "Requests/sec" not in out or "50%" not in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return Result(label, rps, p50, p99, errors, requests)


async def _aiohttp_load(url: str, keys: list[str], duration: float, connections: int) -> Result:
    import aiohttp

    body = json.dumps(STATUS).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    counter = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, counter
        while time.perf_counter() < deadline:
            counter += 1
            key = keys[counter % len(keys)]
            started = time.perf_counter()
            try:
                async with session.put(url, data=body, headers={
                        "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        begun = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - begun
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return Result("", len(latencies) / elapsed, pick(0.5), pick(0.99), errors, len(latencies))


def run_aiohttp(label: str, url: str, keys: list[str], duration: float, connections: int) -> Result:
    result = asyncio.run(_aiohttp_load(url, keys, duration, connections))
    result.label = label
    return result


# --- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=8,
                        help="rounds of (bare, few, many) measurements; medians are reported")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load on each server first")
    parser.add_argument("--printers", type=int, nargs=2, default=[100, 10_000], metavar=("FEW", "MANY"))
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--client", choices=["auto", "wrk", "aiohttp"], default="auto")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "aiohttp"
    few, many = args.printers

    def load(url: str, keys: list[str], seconds: float) -> Result:
        if client == "wrk":
            return run_wrk("", url, work, keys, seconds, args.connections, args.threads)
        return run_aiohttp("", url, keys, seconds, args.connections)

    work = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    started = time.monotonic()
    load_at_start = os.getloadavg()
    processes: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    memory: dict[str, float] = {}
    rounds: dict[str, list[Result]] = {}
    try:
        # All three servers run side by side; the load alternates between them in
        # rounds, so drift in the machine's other work hits each alike.
        port = free_port()
        processes["bare"] = start_bare(work, port)
        urls["bare"] = f"http://127.0.0.1:{port}"
        keys["bare"] = [f"hpk_{i}" for i in range(few)]
        for count in (few, many):
            label = f"herald {count}"
            data_dir = work / f"herald-{count}"
            data_dir.mkdir()
            keys[label] = asyncio.run(seed(data_dir, count))
            port = free_port()
            processes[label] = start_herald(data_dir, port)
            urls[label] = f"http://127.0.0.1:{port}"
        for label, url in urls.items():
            wait_for(url + ("/healthz" if label != "bare" else "/api/v1/printer/status"))
        time.sleep(2)
        for label, process in processes.items():
            memory[f"{label}, idle at start"] = process_tree_rss_kib(process.pid) / 1024
        for label, url in urls.items():
            if args.warmup:
                load(url + "/api/v1/printer/status", keys[label], args.warmup)
        for _round in range(args.rounds):
            for label, url in urls.items():
                cpu_before = cpu_seconds(processes[label].pid)
                result = load(url + "/api/v1/printer/status", keys[label], args.duration)
                cpu = cpu_seconds(processes[label].pid) - cpu_before
                result.cpu_us_per_request = cpu / max(result.requests, 1) * 1e6
                rounds.setdefault(label, []).append(result)
        time.sleep(3)
        for label, process in processes.items():
            memory[f"{label}, idle after load"] = process_tree_rss_kib(process.pid) / 1024
    finally:
        for process in processes.values():
            stop(process)
        stored = {count: _count_statuses(work / f"herald-{count}") for count in (few, many)
                  if (work / f"herald-{count}" / "herald.sqlite3").exists()}
        shutil.rmtree(work, ignore_errors=True)

    def median(label: str, attribute: str) -> float:
        values = [getattr(r, attribute) for r in rounds[label]]
        values = [v for v in values if v == v] or [float("nan")]  # drop NaN (unparsed figures)
        return statistics.median(values)

    bare_rps = median("bare", "rps")
    few_rps, many_rps = median(f"herald {few}", "rps"), median(f"herald {many}", "rps")
    ratio_rounds = [h.rps / b.rps for h, b in zip(rounds[f"herald {few}"], rounds["bare"], strict=True)]
    scale_rounds = [m.rps / f.rps for m, f in zip(rounds[f"herald {many}"], rounds[f"herald {few}"], strict=True)]
    figures = {
        "client": client, "connections": args.connections, "duration_s": args.duration, "rounds": args.rounds,
        "rps": {label: round(median(label, "rps")) for label in rounds},
        "p50_ms": {label: round(median(label, "p50_ms"), 2) for label in rounds},
        "p99_ms": {label: round(median(label, "p99_ms"), 2) for label in rounds},
        "errors": {label: sum(r.errors for r in results) for label, results in rounds.items()},
        "ratio_ingest_to_bare": round(statistics.median(ratio_rounds), 3),
        "ratio_ingest_to_bare_of_medians": round(few_rps / bare_rps, 3),
        "ratio_many_to_few": round(statistics.median(scale_rounds), 3),
        "ratio_many_to_few_of_medians": round(many_rps / few_rps, 3),
        "cpu_us_per_request": {label: round(median(label, "cpu_us_per_request")) for label in rounds},  # noqa: E501
        # Requests per CPU-second relative to the bare app: the throughput ratio on an
        # otherwise idle core, and far less sensitive to other load on the machine.
        "cpu_ratio_ingest_to_bare": round(median("bare", "cpu_us_per_request")
                                          / median(f"herald {few}", "cpu_us_per_request"), 3),
        "cpu_ratio_many_to_few": round(median(f"herald {few}", "cpu_us_per_request")
                                       / median(f"herald {many}", "cpu_us_per_request"), 3),
        "memory_mib": {label: round(mib, 1) for label, mib in memory.items()},
        "statuses_stored_at_shutdown": stored,
        "seconds": round(time.monotonic() - started),
        "load_average": {"start": [round(x, 1) for x in load_at_start],
                         "end": [round(x, 1) for x in os.getloadavg()]},
    }
    print(f"client: {client}, {args.connections} connections, {args.rounds} rounds of {args.duration:g} s "
          f"per server (medians)")
    print(f"{'':16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU µs/req':>11}")
    for label in rounds:
        print(f"{label:16} {figures['rps'][label]:8d} {figures['p50_ms'][label]:8.2f} "
              f"{figures['p99_ms'][label]:8.2f} {figures['errors'][label]:7d} "
              f"{figures['cpu_us_per_request'][label]:11d}")
    print(f"ingest / bare Quart ({few} printers): {figures['ratio_ingest_to_bare']:.2f} "
          f"(per-round ratios {', '.join(f'{r:.2f}' for r in ratio_rounds)}; target >= 0.6)")
    print(f"ingest {many} / {few} printers: {figures['ratio_many_to_few']:.2f} "
          f"(per-round ratios {', '.join(f'{r:.2f}' for r in scale_rounds)}; target >= 0.9)")
    print(f"by server CPU per request: ingest / bare {figures['cpu_ratio_ingest_to_bare']:.2f}, "
          f"{many} / {few} printers {figures['cpu_ratio_many_to_few']:.2f}")
    for label, mib in figures["memory_mib"].items():
        print(f"memory {label}: {mib:.1f} MiB")
    print(f"printers whose status reached the database (flushed, and at shutdown): {stored}")
    print(f"load average of the machine at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(at the start: {', '.join(f'{x:.1f}' for x in load_at_start)})")
    if args.json:
        print(json.dumps(figures))
    return 0


def _count_statuses(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "herald.sqlite3") as db:
        # The seed stores a status but no status_updated_at; only Herald's flush sets that.
        return db.execute("SELECT COUNT(*) FROM printers WHERE status_updated_at IS NOT NULL").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
