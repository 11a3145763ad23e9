#!/usr/bin/env python3
"""Benchmark POST /alexa against a bare Quart app, in one run.

Herald runs as a real hypercorn server in a subprocess with request verification
ON: every request carries a fresh RSA signature, checked against a certificate
chain from a CA this script makes (handed to create_app as ``alexa_trust_roots``
and ``alexa_cert_fetcher``, as the tests do), with the certificate cached after
the first request. The request is a LaunchRequest from a linked account (an OAuth access token)
with three printers, so each one looks up the token, reads the printers and
runs the skill.
The baseline is a bare Quart app under the same hypercorn settings that reads
the body and returns a JSON answer of the same size.

    .venv/bin/python scripts/bench_alexa.py [--seconds 10] [--concurrency 16]

Prints requests per second, p50 and p99 latency of each and the ratio
(target: Herald >= 0.4 of the bare app's throughput).
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


# --- the two servers (run as subprocesses of this script) -----------------------------------

def serve_herald(port: int, directory: Path) -> None:
    from cryptography import x509
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from appliance.app import create_app
    from appliance.clock import Clock
    from appliance.db import apply_migrations, close_database, open_database
    from appliance.models import AccessToken, Printer
    from appliance.secrets import token_hash
    from appliance.services.accounts import create_user
    from appliance.settings import Settings

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
        # the account is linked: requests carry an OAuth access token, as Alexa sends them
        await AccessToken.create(token_hash=token_hash(ACCESS_TOKEN), user=admin, name="Alexa", client_id="alexa",
                                 scope="printers:read", expires_at=now + timedelta(hours=1))
        await close_database()

    asyncio.run(seed())
    app = create_app(settings, run_migrations=False, alexa_trust_roots=roots, alexa_cert_fetcher=fetch)
    _run_hypercorn(app, port, serve, Config)


def serve_bare(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart, request

    app = Quart("bare")
    answer = json.dumps({"version": "1.0", "response": {"outputSpeech": {"type": "SSML", "ssml": "<speak>" + "x" * 200 + "</speak>"}, "shouldEndSession": True}})

    @app.post("/alexa")
    async def alexa():
        await request.get_data()
        return answer, 200, {"Content-Type": "application/json"}

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


async def load(url: str, requests: list[tuple[bytes, dict[str, str]]], seconds: float,
               concurrency: int) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm up: open connections, fill caches (the certificate fetch happens here)
        for body, headers in requests[:concurrency]:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url} answered {response.status}: {await response.text()}")
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            index = offset
            while time.perf_counter() < deadline:
                body, headers = requests[index % len(requests)]
                index += concurrency
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


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
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per server")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
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

    from tests.support.alexa import make_pki

    pki = make_pki()
    results = {}
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        directory = Path(tmp)
        (directory / "root.pem").write_bytes(pki.root.public_bytes(__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM))
        (directory / "chain.pem").write_bytes(pki.good.chain_pem)
        for kind in ("bare", "herald"):
            port = free_port()
            process = start(kind, port, directory)
            try:
                wait_listening(port, process)
                # signatures are made before the clock starts; 150 s is Amazon's limit on their age
                requests = signed_requests(pki.good.key, 400)
                results[kind] = asyncio.run(load(f"http://127.0.0.1:{port}/alexa", requests,
                                                 args.seconds, args.concurrency))
            finally:
                stop(process)
    for kind in ("bare", "herald"):
        r = results[kind]
        label = "bare Quart" if kind == "bare" else "Herald /alexa (verified)"
        print(f"{label:26} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"({r['requests']} requests, {r['errors']} errors)")
    ratio = results["herald"]["rps"] / results["bare"]["rps"]
    print(f"throughput ratio Herald/bare: {ratio:.2f} (target >= 0.4)")
    print(f"p99 ratio Herald/bare: {results['herald']['p99_ms'] / results['bare']['p99_ms']:.2f}")
    return 0 if ratio >= 0.4 and not results["herald"]["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
