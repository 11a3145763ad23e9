"""The ingest benchmark runs end to end (with tiny numbers; the real figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("client", ["aiohttp"])
def test_bench_ingest_smoke(client):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_ingest.py"), "--rounds", "1", "--duration", "1",
         "--warmup", "0", "--printers", "5", "20", "--connections", "4", "--client", client, "--json"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["rps"]) == {"bare", "herald 5", "herald 20"}
    assert all(rps > 0 for rps in figures["rps"].values())
    assert figures["errors"] == {"bare": 0, "herald 5": 0, "herald 20": 0}
    # Every printer's status reached the database by the final flush at shutdown.
    assert figures["statuses_stored_at_shutdown"] == {"5": 5, "20": 20}
    assert 0 < figures["memory_mib"]["herald 20, idle after load"] < 500
    assert "ingest / bare Quart" in result.stdout
