"""The relay benchmark runs end to end (tiny numbers; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_relay_smoke():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_relay.py"), "--requests", "5", "--megabytes", "2",
         "--seconds", "1", "--tunnels", "20", "--json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for side in ("direct", "relay"):
        assert report["transfer_mb_s"][side]["upload"] > 0 and report["transfer_mb_s"][side]["download"] > 0
        assert report["latency"][side]["p50_ms"] > 0
        assert report["concurrent_50"][side]["ok"] == 50  # every one of 50 concurrent streams answered
    if "mjpeg_fps" in report:  # ffmpeg is on the machine (.ci/run installs it)
        assert report["mjpeg_fps"]["relay"] > 0
    assert report["idle"]["tunnels"] == 20 and report["idle"]["rss_with_tunnels_mib"] > 0
