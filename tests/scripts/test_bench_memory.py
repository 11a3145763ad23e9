"""The idle-memory benchmark runs end to end (short idle; the real figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_memory_smoke():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_memory.py"), "--runs", "1", "--idle", "1", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"bare", "herald"}
    for moment in ("start", "idle"):
        herald, bare = figures["herald"][moment], figures["bare"][moment]
        assert 0 < bare["uss"] <= bare["rss"] and 0 < herald["uss"] <= herald["rss"]
        assert herald["rss"] > bare["rss"]  # the server's own modules, read from its smaps_rollup
    assert figures["herald"]["modules"] > 500  # the idle server answered SIGUSR1 with its sys.modules
    # Idle, with no broker set and no Alexa request yet: neither MQTT nor Amazon's models loaded.
    assert not {"aiomqtt", "paho", "ask_sdk_model", "ask_sdk_core"} & set(figures["herald"]["watched_imported"])
