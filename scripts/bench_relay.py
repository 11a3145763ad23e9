#!/usr/bin/env python3
"""The relay's speed and memory, as ratios to direct access to OctoPrint measured in the same run.

Part 1: a real OctoPrint (virtual printer) with the plugin, relay on, behind a real Herald
(``herald serve``: hypercorn, SQLite), an App Connection as an app would use it. Alternating
direct and relayed: ``GET /api/version`` latency (p50, p99), a G-code upload and download
(MB/s), an MJPEG test pattern from ffmpeg (frames per second against the source's), and 50
concurrent requests.

Part 2: idle tunnels' memory. A Herald seeded with ``--tunnels`` printers; this script opens one
tunnel WebSocket per printer (the plugin's hello, then nothing) and reads Herald's RSS before
and after.

    .venv/bin/python scripts/bench_relay.py            # about 3 minutes; --json adds a JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import requests  # noqa: E402
from bench_ingest import process_tree_rss_kib, seed, start_herald, stop, wait_for  # noqa: E402

from tests.e2e.test_plugin_octoprint import HeraldOwner, link, plugin_state  # noqa: E402
from tests.e2e.test_plugin_octoprint import wait_for as wait_until  # noqa: E402
from tests.e2e.test_relay_octoprint import (  # noqa: E402
    EMAIL,
    PASSWORD,
    Relay,
    _frames,
    _listening,
    app_connection,
)
from tests.support.octoprint import API_KEY, OctoPrintServer, free_port  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

SOURCE_FPS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(direct: requests.Session, relayed: requests.Session, octoprint_url: str, relay_url: str,
            count: int) -> dict:
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    for _ in range(count):
        for name, session, base in (("direct", direct, octoprint_url), ("relay", relayed, relay_url)):
            started = time.perf_counter()
            answer = session.get(base + "/api/version", timeout=30)
            times[name].append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text
    return {name: {"p50_ms": statistics.median(v), "p99_ms": percentile(v, 0.99)} for name, v in times.items()}


def transfer(session: requests.Session, base: str, path: Path, name: str) -> tuple[float, float]:
    size = path.stat().st_size
    started = time.perf_counter()
    with open(path, "rb") as handle:
        answer = session.post(base + "/api/files/local", files={"file": (name, handle)}, timeout=600)
    assert answer.status_code == 201, answer.text
    up = size / (time.perf_counter() - started) / 1e6
    started = time.perf_counter()
    received = 0
    with session.get(f"{base}/downloads/files/local/{name}", stream=True, timeout=600) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_content(256 * 1024):
            received += len(chunk)
    assert received == size
    down = size / (time.perf_counter() - started) / 1e6
    return up, down


def mjpeg_fps(session: requests.Session, url: str, port: int, seconds: float) -> float:
    streamer = subprocess.Popen([shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                                 "-f", "lavfi", "-i", f"testsrc=size=640x480:rate={SOURCE_FPS}", "-q:v", "5",
                                 "-f", "mpjpeg", "-content_type", "multipart/x-mixed-replace;boundary=ffmpeg",
                                 "-listen", "1", f"http://127.0.0.1:{port}/stream.mjpg"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 30, "ffmpeg to listen")
        with session.get(url, stream=True, timeout=30) as stream:
            frames = _frames(stream)
            next(frames)  # the clock starts at the first frame
            started, count = time.perf_counter(), 0
            for _frame in frames:
                count += 1
                if time.perf_counter() - started >= seconds:
                    break
            return count / (time.perf_counter() - started)
    finally:
        streamer.kill()
        streamer.wait(10)


def concurrent_requests(base: str, auth, count: int) -> tuple[float, int]:
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return requests.get(base + "/api/version", auth=auth, headers={"X-Api-Key": API_KEY}, timeout=60).status_code

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        codes = list(pool.map(one, range(count)))
    others = sorted(c for c in codes if c != 200)
    if others:
        print(f"concurrent GETs to {base}: not 200: {others}", flush=True)
    return time.perf_counter() - started, sum(1 for c in codes if c == 200)


def part_one(work: Path, args) -> dict:
    # 50 concurrent streams on one connection: over the default per-connection limit (32), which
    # answers the rest 429 with Retry-After, as designed; the bench measures the relay, not the limit
    herald = LiveServer(data_dir=work / "herald", port=free_port(), env={"HERALD_RELAY_MAX_STREAMS": "64"})
    herald.data_dir.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", EMAIL, "--password", PASSWORD],
                   env=herald.environ(), check=True, capture_output=True, timeout=120)
    herald.start()
    mjpeg_port = free_port()
    octoprint = OctoPrintServer(work / "octoprint", plugin_settings={"herald_url": herald.url,
                                                                   "relay": {"enabled": True}})
    octoprint.prepare()
    import yaml

    config_path = octoprint.basedir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["plugins"]["classicwebcam"] = {"_config_version": 1, "stream": f"http://127.0.0.1:{mjpeg_port}/stream.mjpg"}
    config_path.write_text(yaml.safe_dump(config))
    octoprint.start()
    try:
        owner = HeraldOwner(herald.url).login()
        printer_id = link(octoprint, owner)
        wait_until(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60, "the tunnel")
        relay = Relay(app_connection(owner, printer_id))
        direct, relayed = requests.Session(), requests.Session()
        direct.headers["X-Api-Key"] = relayed.headers["X-Api-Key"] = API_KEY
        relayed.auth = relay.basic
        report: dict = {"latency": latency(direct, relayed, octoprint.url, relay.url, args.requests)}
        big = work / "bench.gcode"
        with open(big, "wb") as handle:
            line = b"G1 X100.5 Y100.5 E1.23456 F1800 ; benchmark line\n"
            handle.write(line * (args.megabytes * 1024 * 1024 // len(line)))
        rounds = {"direct": [], "relay": []}
        for i in range(2):
            rounds["direct"].append(transfer(direct, octoprint.url, big, f"direct{i}.gcode"))
            rounds["relay"].append(transfer(relayed, relay.url, big, f"relay{i}.gcode"))
        report["transfer_mb_s"] = {name: {"upload": statistics.median(r[0] for r in v),
                                          "download": statistics.median(r[1] for r in v)}
                                   for name, v in rounds.items()}
        if shutil.which("ffmpeg"):
            report["mjpeg_fps"] = {
                "source": SOURCE_FPS,
                "direct": mjpeg_fps(requests.Session(), f"http://127.0.0.1:{mjpeg_port}/stream.mjpg", mjpeg_port,
                                    args.seconds),
                "relay": mjpeg_fps(relayed, relay.url + "/_herald/webcam/stream", mjpeg_port, args.seconds)}
        report["concurrent_50"] = {}
        for name, base, auth in (("direct", octoprint.url, None), ("relay", relay.url, relay.basic)):
            seconds, ok = concurrent_requests(base, auth, 50)
            report["concurrent_50"][name] = {"seconds": seconds, "ok": ok}
        return report
    finally:
        octoprint.stop()
        herald.stop()


async def _open_tunnels(url: str, keys: list[str]) -> list:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # each tunnel holds a connection
    sockets = []
    hello = json.dumps({"op": "hello", "versions": [1], "plugin_version": "bench", "window": 262144})
    for start in range(0, len(keys), 50):
        batch = await asyncio.gather(*(session.ws_connect(url, headers={"Authorization": f"Bearer {k}"},
                                                          heartbeat=None) for k in keys[start:start + 50]))
        for ws in batch:
            await ws.send_str(hello)
            await ws.receive()  # Herald's hello
        sockets += batch
    return [session, *sockets]


def part_two(work: Path, tunnels: int) -> dict:
    data_dir = work / "idle"
    data_dir.mkdir()
    keys = asyncio.run(seed(data_dir, tunnels))
    port = free_port()
    server = start_herald(data_dir, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        time.sleep(2)
        before = process_tree_rss_kib(server.pid)
        loop = asyncio.new_event_loop()
        held = loop.run_until_complete(_open_tunnels(f"ws://127.0.0.1:{port}/api/v1/printer/tunnel", keys))
        loop.run_until_complete(asyncio.sleep(5))
        after = process_tree_rss_kib(server.pid)

        async def close():
            for ws in held[1:]:
                await ws.close()
            await held[0].close()

        loop.run_until_complete(close())
        loop.close()
        return {"tunnels": tunnels, "rss_before_mib": before / 1024, "rss_with_tunnels_mib": after / 1024,
                "per_tunnel_kib": (after - before) / tunnels}
    finally:
        stop(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="API GETs per side for the latency figures")
    parser.add_argument("--megabytes", type=int, default=20, help="size of the uploaded and downloaded G-code")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of MJPEG per side")
    parser.add_argument("--tunnels", type=int, default=1000, help="idle tunnels for the memory figure")
    parser.add_argument("--json", action="store_true", help="also print the report as one JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="herald-bench-relay-") as tmp:
        report = part_one(Path(tmp), args)
        print("part 1:", json.dumps(report), flush=True)
        report["idle"] = part_two(Path(tmp), args.tunnels)
    lat, tr, con = report["latency"], report["transfer_mb_s"], report["concurrent_50"]
    print(f"API GET p50: direct {lat['direct']['p50_ms']:.1f} ms, relay {lat['relay']['p50_ms']:.1f} ms "
          f"(+{lat['relay']['p50_ms'] - lat['direct']['p50_ms']:.1f} ms); p99: direct {lat['direct']['p99_ms']:.1f} ms, "
          f"relay {lat['relay']['p99_ms']:.1f} ms")
    for way in ("upload", "download"):
        print(f"{way}: direct {tr['direct'][way]:.1f} MB/s, relay {tr['relay'][way]:.1f} MB/s, "
              f"ratio {tr['relay'][way] / tr['direct'][way]:.2f}")
    if "mjpeg_fps" in report:
        fps = report["mjpeg_fps"]
        print(f"MJPEG: source {fps['source']} fps, direct {fps['direct']:.2f}, relay {fps['relay']:.2f} "
              f"(relay/source {fps['relay'] / fps['source']:.2f})")
    print(f"50 concurrent GETs: direct {con['direct']['seconds']:.2f} s ({con['direct']['ok']} ok), relay "
          f"{con['relay']['seconds']:.2f} s ({con['relay']['ok']} ok)")
    idle = report["idle"]
    print(f"{idle['tunnels']} idle tunnels: Herald RSS {idle['rss_before_mib']:.0f} -> {idle['rss_with_tunnels_mib']:.0f}"
          f" MiB ({idle['per_tunnel_kib']:.0f} KiB per tunnel)")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
