#!/usr/bin/env python3
"""Server-side render time of Herald's pages with many printers, against a bare Quart render.

Usage: .venv/bin/python scripts/bench_pages.py [--printers 50] [--runs 200] [--database-url URL]

Builds a throwaway SQLite database (or uses --database-url, which must be an empty,
disposable database) with one user owning N printers in realistic states, then times
GET requests through Quart's ASGI stack (no network, no browser: what the server
spends). The same run times a bare Quart app rendering a one-line template, so the
ratio column says how much Herald's page costs on this machine, whatever its speed.
The target: every page under 100 ms with 50 printers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quart import Quart, render_template_string  # noqa: E402

from appliance.app import create_app  # noqa: E402
from appliance.core.settings import Settings
from tests.support.printers_data import idle_status, make_printer, paused_status, printing_status  # noqa: E402
from tests.support.users import login, make_user  # noqa: E402

TARGET_MS = 100.0


async def time_get(client, path: str, runs: int) -> list[float]:
    for _ in range(5):  # warm up template caches and connections
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        await response.get_data()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


async def bench(printers: int, runs: int, database_url: str) -> int:
    bare = Quart("bare")

    @bare.get("/")
    async def _bare():
        return await render_template_string("<!doctype html><p>Hello {{ name }}</p>", name="Herald")

    async with bare.test_app() as bare_app:
        baseline = summary(await time_get(bare_app.test_client(), "/", runs))

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.build(data_dir=tmp, database_url=database_url, public_url="http://herald.test")
        app = create_app(settings)
        async with app.test_app() as test_app:
            herald = test_app.app.extensions["herald"]
            user = await make_user("bench@example.com")
            now = herald.clock.now()
            statuses = (printing_status, idle_status, paused_status)
            first = None
            for n in range(printers):
                printer = await make_printer(user, f"Printer {n:02d}", status=statuses[n % 3](),
                                             seen=now - timedelta(seconds=10 + n * 20))
                first = first or printer
            client = test_app.test_client()
            await login(client, "bench@example.com")
            pages = ["/", "/printers", f"/printers/{first.id}", "/account", "/api/v1/printers"]
            rows = [(path, summary(await time_get(client, path, runs))) for path in pages]
            anonymous = test_app.test_client()
            rows.append(("/login (visitor)", summary(await time_get(anonymous, "/login", runs))))

    print(f"Herald page render times, {printers} printers, {runs} requests each, "
          f"{'SQLite' if database_url.startswith('sqlite') or not database_url else 'PostgreSQL'}")
    print(f"{'page':<28}{'median ms':>10}{'p95 ms':>10}{'x bare':>9}")
    print(f"{'bare Quart template':<28}{baseline[0]:>10.2f}{baseline[1]:>10.2f}{1.0:>9.1f}")
    slow = []
    for path, (median, p95) in rows:
        label = path if len(path) < 28 else path[:14] + "…" + path[-12:]
        print(f"{label:<28}{median:>10.2f}{p95:>10.2f}{median / baseline[0]:>9.1f}")
        if p95 >= TARGET_MS:
            slow.append(path)
    if slow:
        print(f"over {TARGET_MS:.0f} ms at p95: {', '.join(slow)}")
        return 1
    print(f"every page under {TARGET_MS:.0f} ms at p95")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--printers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database-url", default="", help="an empty, disposable database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    return asyncio.run(bench(args.printers, args.runs, args.database_url))


if __name__ == "__main__":
    sys.exit(main())
