#!/usr/bin/env python3
"""Benchmark POST /alexa against a bare Quart app, in one run.

Herald runs as a real hypercorn server in a subprocess, set up as `herald serve`
sets it up (including its garbage-collector tuning), with request verification
ON: every request carries a fresh RSA signature, checked against a certificate
chain from a CA this script makes (handed to create_app as ``alexa_trust_roots``
and ``alexa_cert_fetcher``, as the tests do), with the certificate cached after
the first request. The request is a LaunchRequest from a linked account (an OAuth access token)
with three printers, so each one looks up the token, reads the printers and
runs the skill.
The baseline is a bare Quart app under the same hypercorn settings that reads
the body and returns a JSON answer of similar size. Both run at once and the
load alternates between them in half-second windows, so that both see the same
background load on a shared machine.

Then, while printers push status into the same Herald (PUT /api/v1/printer/status
as fast as --ingest-concurrency connections allow), /alexa and a bare route
mounted in that same server (for the benchmark only) are measured the same way.

    .venv/bin/python scripts/bench_alexa.py [--seconds 10] [--concurrency 16]

Prints requests per second, p50 and p99 latency of each and the ratios
(targets: Herald >= 0.4 of the bare app's throughput; under ingest load, Alexa's
p99 at most twice the bare route's). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SKILL_ID = "amzn1.ask.skill.bench-0000-herald"
CERT_URL = "https://s3.amazonaws.com/echo.api/echo-api-cert-bench.pem"
ACCESS_TOKEN = "hat_bench-token-not-secret"
INGEST_PRINTERS = 20


def ingest_key(number: int) -> str:
    return f"hpk_bench-printer-{number:03d}-not-secret"


# --- the two servers (run as subprocesses of this script) -----------------------------------

def serve_herald(port: int, directory: Path) -> None:
    from cryptography import x509
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from appliance.accounts.models import AccessToken
    from appliance.accounts.users import create_user
    from appliance.app import create_app, tune_gc_for_serving
    from appliance.core.clock import Clock
    from appliance.core.db import apply_migrations, close_database, open_database
    from appliance.core.secrets import token_hash
    from appliance.core.settings import Settings
    from appliance.printers.models import Printer

    settings = Settings.build(data_dir=str(directory), host="127.0.0.1", port=port, log_level="WARNING",
                              alexa_skill_id=SKILL_ID)
    roots = [x509.load_pem_x509_certificate((directory / "root.pem").read_bytes())]
    chain = (directory / "chain.pem").read_bytes()

    async def fetch(url: str) -> bytes:
        if url != CERT_URL:
            raise LookupError(url)
        return chain

    async def seed() -> None:
        await apply_migrations(settings)
        await open_database(settings, run_migrations=False)
        admin = await create_user("bench@example.com", "bench password 123", is_admin=True, verified=True,
                                  clock=Clock())
        now = datetime.now(UTC)
        statuses = [
            {"state": "Printing", "state_id": "printing",
             "temperatures": {"tool0": {"actual": 210.0, "target": 210.0}, "bed": {"actual": 60.0, "target": 60.0}},
             "job": {"file": "benchy.gcode", "progress": 42.0, "print_time_left": 3000}},
            {"state": "Operational", "state_id": "operational"},
            {"state": "Paused", "state_id": "paused", "job": {"file": "vase.gcode", "progress": 70.0}},
        ]
        for name, status in zip(("Prusa", "Ender", "Voron"), statuses, strict=True):
            await Printer.create(id=str(uuid.uuid4()), owner=admin, name=name, key_hash=uuid.uuid4().hex * 2, online=True,
                                 last_seen_at=now - timedelta(seconds=20), status=status)
        # printers of another account that push status during the "under ingest load" phase
        other = await create_user("ingest@example.com", "bench password 123", verified=True, clock=Clock())
        for number in range(INGEST_PRINTERS):
            await Printer.create(id=str(uuid.uuid4()), owner=other, name=f"Ingest {number}",
                                 key_hash=token_hash(ingest_key(number)), online=True, last_seen_at=now)
        # the account is linked: requests carry an OAuth access token, as Alexa sends them
        await AccessToken.create(token_hash=token_hash(ACCESS_TOKEN), user=admin, name="Alexa", client_id="alexa",
                                 scope="printers:read", expires_at=now + timedelta(hours=1))
        await close_database()

    asyncio.run(seed())
    app = create_app(settings, run_migrations=False, alexa_trust_roots=roots, alexa_cert_fetcher=fetch)
    tune_gc_for_serving(app)  # as `herald serve` does
    _add_bare_route(app, "/bench/bare")  # the bare baseline inside the loaded server (bench only)
    _run_hypercorn(app, port, serve, Config)


BARE_ANSWER = json.dumps({"version": "1.0", "response": {
    "outputSpeech": {"type": "SSML", "ssml": "<speak>" + "x" * 200 + "</speak>"}, "shouldEndSession": True}})


def _add_bare_route(app, path: str) -> None:
    from quart import request

    from appliance.accounts.auth import csrf_exempt

    async def bare():
        await request.get_data()
        return BARE_ANSWER, 200, {"Content-Type": "application/json"}

    app.add_url_rule(path, "bench_bare", csrf_exempt(bare), methods=["POST"])


def serve_bare(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart

    app = Quart("bare")
    _add_bare_route(app, "/alexa")
    _run_hypercorn(app, port, serve, Config)


def _run_hypercorn(app, port: int, serve, config_class) -> None:
    config = config_class()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(main())


# --- the load ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start in {timeout} s")


def signed_requests(key, count: int) -> list[tuple[bytes, dict[str, str]]]:
    from tests.support.alexa import envelope, sign

    now = datetime.now(UTC)
    requests = []
    for _ in range(count):
        body = json.dumps(envelope(request_type="LaunchRequest", skill_id=SKILL_ID, timestamp=now,
                                   access_token=ACCESS_TOKEN)).encode()
        requests.append((body, {"Content-Type": "application/json", "SignatureCertChainUrl": CERT_URL,
                                "Signature-256": sign(body, key)}))
    return requests


async def load(urls: dict[str, str], requests: list[tuple[bytes, dict[str, str]]], seconds: float,
               concurrency: int, window: float = 0.5) -> dict[str, dict[str, float]]:
    """Load each URL for ``seconds`` in total, alternating short windows between them, so
    that both see the same background load on a shared machine."""
    import aiohttp

    latencies: dict[str, list[float]] = {name: [] for name in urls}
    errors = dict.fromkeys(urls, 0)
    elapsed = dict.fromkeys(urls, 0.0)
    connector = aiohttp.TCPConnector(limit=concurrency * len(urls))
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm up: open connections, fill caches (the certificate fetch happens here)
        for url in urls.values():
            for body, headers in requests[:concurrency]:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}: {await response.text()}")
        index = 0
        for _ in range(max(1, round(seconds / window))):
            for name, url in urls.items():
                deadline = time.perf_counter() + window

                async def worker(offset: int, name=name, url=url, deadline=deadline, first=index) -> None:
                    position = first + offset
                    while time.perf_counter() < deadline:
                        body, headers = requests[position % len(requests)]
                        position += concurrency
                        started = time.perf_counter()
                        async with session.post(url, data=body, headers=headers) as response:
                            await response.read()
                            if response.status != 200:
                                errors[name] += 1
                        latencies[name].append(time.perf_counter() - started)

                started = time.perf_counter()
                await asyncio.gather(*(worker(i) for i in range(concurrency)))
                elapsed[name] += time.perf_counter() - started
                index += 97
    results = {}
    for name, values in latencies.items():
        values.sort()
        results[name] = {
            "requests": len(values),
            "errors": errors[name],
            "rps": len(values) / elapsed[name],
            "p50_ms": statistics.median(values) * 1000,
            "p99_ms": values[max(0, int(len(values) * 0.99) - 1)] * 1000,
        }
    return results


async def ingest_load(base: str, stop: asyncio.Event, concurrency: int) -> int:
    """Printers pushing status as fast as ``concurrency`` connections allow, until ``stop``."""
    import aiohttp

    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def printer(number: int) -> None:
            nonlocal sent
            progress = 0.0
            headers = {"Authorization": f"Bearer {ingest_key(number)}"}
            while not stop.is_set():
                progress = (progress + 0.1) % 100
                status = {"state": "Printing", "state_id": "printing",
                          "temperatures": {"tool0": {"actual": 210.0, "target": 210.0},
                                           "bed": {"actual": 60.0, "target": 60.0}},
                          "job": {"file": "load.gcode", "progress": progress, "print_time_left": 1000}}
                async with session.put(f"{base}/api/v1/printer/status", json=status, headers=headers) as response:
                    await response.read()
                    if response.status != 204:
                        raise SystemExit(f"status ingest answered {response.status}: {await response.text()}")
                sent += 1

        await asyncio.gather(*(printer(n % INGEST_PRINTERS) for n in range(concurrency)))
    return sent


async def under_ingest(base: str, requests, seconds: float, concurrency: int, ingest_concurrency: int):
    stop = asyncio.Event()
    loader = asyncio.create_task(ingest_load(base, stop, ingest_concurrency))
    started = time.perf_counter()
    try:
        await asyncio.sleep(1.0)
        results = await load({"bare": f"{base}/bench/bare", "herald": f"{base}/alexa"}, requests,
                             seconds, concurrency)
    finally:
        stop.set()
        sent = await loader
    return results["bare"], results["herald"], sent / (time.perf_counter() - started)


def start(kind: str, port: int, directory: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port), "--dir", str(directory)],
                            env=env)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per target and phase")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--ingest-concurrency", type=int, default=8,
                        help="status pushes in flight during the under-ingest-load phase")
    parser.add_argument("--serve", choices=["herald", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "herald":
        serve_herald(args.port, args.dir)
        return 0
    if args.serve == "bare":
        serve_bare(args.port)
        return 0

    from tests.support.alexa import make_pki, pem

    pki = make_pki()
    results = {}
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        directory = Path(tmp)
        (directory / "root.pem").write_bytes(pem(pki.root))
        (directory / "chain.pem").write_bytes(pki.good.chain_pem)
        ports = {kind: free_port() for kind in ("bare", "herald")}
        processes = {kind: start(kind, port, directory) for kind, port in ports.items()}
        try:
            for kind, port in ports.items():
                wait_listening(port, processes[kind])
            # signatures are made before the clock starts; 150 s is Amazon's limit on their age
            requests = signed_requests(pki.good.key, 400)
            results.update(asyncio.run(load({kind: f"http://127.0.0.1:{port}/alexa" for kind, port in ports.items()},
                                            requests, args.seconds, args.concurrency)))
            stop(processes.pop("bare"))
            requests = signed_requests(pki.good.key, 400)
            results["loaded_bare"], results["loaded_herald"], ingest_rate = asyncio.run(under_ingest(
                f"http://127.0.0.1:{ports['herald']}", requests, args.seconds, 4, args.ingest_concurrency))
        finally:
            for process in processes.values():
                stop(process)
    for kind in ("bare", "herald"):
        r = results[kind]
        label = "bare Quart" if kind == "bare" else "Herald /alexa (verified)"
        print(f"{label:26} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"({r['requests']} requests, {r['errors']} errors)")
    ratio = results["herald"]["rps"] / results["bare"]["rps"]
    print(f"throughput ratio Herald/bare: {ratio:.2f} (target >= 0.4)")
    print(f"p99 ratio Herald/bare: {results['herald']['p99_ms'] / results['bare']['p99_ms']:.2f}")
    print(f"\nunder status ingest load ({ingest_rate:.0f} status pushes/s into the same server, "
          f"4 requests in flight):")
    for kind, label in (("loaded_bare", "bare route, same server"), ("loaded_herald", "Herald /alexa (verified)")):
        r = results[kind]
        print(f"{label:26} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"({r['requests']} requests, {r['errors']} errors)")
    loaded_ratio = results["loaded_herald"]["p99_ms"] / results["loaded_bare"]["p99_ms"]
    print(f"p99 ratio under load Herald/bare: {loaded_ratio:.2f} (target <= 2)")
    ok = ratio >= 0.4 and loaded_ratio <= 2 and not results["herald"]["errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
