"""The MQTT ingest benchmark runs end to end (tiny numbers; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.needs import program

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_mqtt_ingest_smoke():
    program("mosquitto", "/usr/sbin/mosquitto")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_mqtt_ingest.py"), "--rounds", "1", "--duration", "1",
         "--warmup", "0", "--printers", "5", "--connections", "4", "--client", "aiohttp", "--json"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["rps"]) == {"mqtt off", "broker down", "broker up"}
    assert all(rps > 0 for rps in figures["rps"].values())
    assert figures["errors"] == {"mqtt off": 0, "broker down": 0, "broker up": 0}
    # the broker really got the pushes of "broker up" (latest wins, so at most one per push)
    seen = figures["mqtt_state"]
    assert 0 < seen["state messages seen on the broker"] <= seen["status pushes to broker up"] + 5
