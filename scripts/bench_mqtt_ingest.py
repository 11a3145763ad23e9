#!/usr/bin/env python3
"""Benchmark: status ingest with MQTT (Home Assistant) publishing on, and the broker down, vs MQTT off.

Starts three ``herald serve`` side by side (one worker, SQLite, the same printers, all of them an
admin's, so every one is published):

- ``mqtt off``   no broker configured (the baseline),
- ``broker down`` HERALD_MQTT_HOST pointing at a port where nothing listens: every connect is refused,
  Herald retries with backoff, and every status push still queues its state message,
- ``broker up``  a real mosquitto (Debian's, started here on a free port), every push published.

The load (scripts/bench_ingest.py's client: wrk when installed, else aiohttp) alternates between
them in rounds; medians are reported, with each round's ratio to the baseline measured in the same
round. The figures go in docs/benchmarks.md ("Status ingest with MQTT on").

    .venv/bin/python scripts/bench_mqtt_ingest.py                   # about 2 minutes
    .venv/bin/python scripts/bench_mqtt_ingest.py --rounds 1 --duration 1 --warmup 0 --printers 5   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import bench_ingest  # noqa: E402  (the ingest benchmark's seeding, servers and load clients)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_herald(data_dir: Path, port: int, mqtt: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    # every load connection comes from 127.0.0.1: lift the per-address cap on unfinished bodies,
    # or its 429s (the same for all three) blur the comparison
    env.update(HERALD_DATA_DIR=str(data_dir), HERALD_PORT=str(port), HERALD_HOST="127.0.0.1",
               HERALD_LOG_LEVEL="ERROR", HERALD_UPLOADS_PER_CLIENT="1000", **mqtt)
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def start_mosquitto(work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = work / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--printers", type=int, default=100)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--client", choices=["auto", "wrk", "aiohttp"], default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "aiohttp")
    work = Path(tempfile.mkdtemp(prefix="herald-bench-mqtt-"))

    def load(url: str, keys: list[str], seconds: float) -> bench_ingest.Result:
        if client == "wrk":
            return bench_ingest.run_wrk("", url, work, keys, seconds, args.connections, args.threads)
        return bench_ingest.run_aiohttp("", url, keys, seconds, args.connections)

    started = time.monotonic()
    processes: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    rounds: dict[str, list[bench_ingest.Result]] = {}
    published: dict[str, int] = {}
    mosquitto = None
    try:
        mosquitto, broker_port = start_mosquitto(work)
        refused = free_port()  # nothing listens here
        setups = {
            "mqtt off": {},
            "broker down": {"HERALD_MQTT_HOST": "127.0.0.1", "HERALD_MQTT_PORT": str(refused)},
            "broker up": {"HERALD_MQTT_HOST": "127.0.0.1", "HERALD_MQTT_PORT": str(broker_port)},
        }
        for label, mqtt in setups.items():
            data_dir = work / label.replace(" ", "-")
            data_dir.mkdir()
            keys[label] = asyncio.run(bench_ingest.seed(data_dir, args.printers))
            with sqlite3.connect(data_dir / "herald.sqlite3") as db:  # an admin's printers: all published
                db.execute("UPDATE users SET is_admin = 1")
            port = free_port()
            processes[label] = start_herald(data_dir, port, mqtt)
            urls[label] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            bench_ingest.wait_for(url + "/healthz")
        time.sleep(3)  # the MQTT tasks connect (or fail to) and publish every printer once
        for label, url in urls.items():
            if args.warmup:
                load(url + "/api/v1/printer/status", keys[label], args.warmup)
        with StateCounter(broker_port) as counter:
            for _round in range(args.rounds):
                for label, url in urls.items():
                    cpu_before = bench_ingest.cpu_seconds(processes[label].pid)
                    result = load(url + "/api/v1/printer/status", keys[label], args.duration)
                    cpu = bench_ingest.cpu_seconds(processes[label].pid) - cpu_before
                    result.cpu_us_per_request = cpu / max(result.requests, 1) * 1e6
                    rounds.setdefault(label, []).append(result)
            time.sleep(2)  # the last messages on their way
        published = {"state messages seen on the broker": counter.count,
                     "status pushes to broker up": sum(r.requests for r in rounds["broker up"])}
    finally:
        for process in processes.values():
            bench_ingest.stop(process)
        if mosquitto is not None:
            bench_ingest.stop(mosquitto)
        shutil.rmtree(work, ignore_errors=True)

    def median(label: str, attribute: str) -> float:
        values = [v for r in rounds[label] if (v := getattr(r, attribute)) == v]  # drop NaN (unparsed)
        return statistics.median(values or [float("nan")])

    base = rounds["mqtt off"]
    figures = {
        "client": client, "connections": args.connections, "printers": args.printers,
        "duration_s": args.duration, "rounds": args.rounds,
        "rps": {label: round(median(label, "rps")) for label in rounds},
        "p50_ms": {label: round(median(label, "p50_ms"), 2) for label in rounds},
        "p99_ms": {label: round(median(label, "p99_ms"), 2) for label in rounds},
        "errors": {label: sum(r.errors for r in results) for label, results in rounds.items()},
        "cpu_us_per_request": {label: round(median(label, "cpu_us_per_request")) for label in rounds},
        "ratio_to_mqtt_off": {label: round(statistics.median(
            r.rps / b.rps for r, b in zip(results, base, strict=True)), 3) for label, results in rounds.items()},
        # requests per server CPU-second against MQTT off: steadier than req/s on a shared machine
        "cpu_ratio_to_mqtt_off": {label: round(median("mqtt off", "cpu_us_per_request")
                                               / median(label, "cpu_us_per_request"), 3) for label in rounds},
        "mqtt_state": published,
        "seconds": round(time.monotonic() - started),
        "load_average_end": [round(x, 1) for x in os.getloadavg()],
    }
    print(f"client: {client}, {args.connections} connections, {args.printers} printers, {args.rounds} rounds "
          f"of {args.duration:g} s per server (medians)")
    print(f"{'':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU µs/req':>11} "
          f"{'ratio':>6} {'by CPU':>7}")
    for label in rounds:
        print(f"{label:12} {figures['rps'][label]:8d} {figures['p50_ms'][label]:8.2f} "
              f"{figures['p99_ms'][label]:8.2f} {figures['errors'][label]:7d} "
              f"{figures['cpu_us_per_request'][label]:11d} {figures['ratio_to_mqtt_off'][label]:6.2f} "
              f"{figures['cpu_ratio_to_mqtt_off'][label]:7.2f}")
    per_round = [r.rps / b.rps for r, b in zip(rounds["broker down"], base, strict=True)]
    print(f"broker down / mqtt off, per round: {', '.join(f'{r:.2f}' for r in per_round)}")
    print(", ".join(f"{label}: {count}" for label, count in published.items())
          + " (latest wins: fewer messages than pushes when the broker is slower than ingest)")
    if args.json:
        print(json.dumps(figures))
    return 0


class StateCounter:
    """Counts the state messages the broker hands a subscriber, in a thread of its own: proof that
    "broker up" really published while it was measured."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", self.port, identifier="bench-counter") as client:
            await client.subscribe("herald/+/state")
            messages = client.messages.__aiter__()
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(messages.__anext__(), 0.5)
                    self.count += 1
                except TimeoutError:
                    continue

    def __enter__(self) -> StateCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


if __name__ == "__main__":
    sys.exit(main())
