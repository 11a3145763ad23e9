"""The soak's 60-second version: scripts/soak.py with fewer printers and one SIGKILL.

The full run (1,000 printers, 10 minutes, a SIGKILL every 60 s, on SQLite and on
PostgreSQL) is ``scripts/soak.py --write-docs``; its figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from tests.support import pg

ROOT = Path(__file__).resolve().parents[2]


def soak_module():
    # Imported by name from scripts/ (its receiver runs in a spawned process, which imports it again).
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("soak")


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_minute_of_load_with_a_sigkill_loses_nothing(database):
    if database == "postgres":
        pg.require_server()
    soak = soak_module()
    args = soak.parse_args(["--database", database, "--seconds", "60", "--printers", "200",
                            "--kill-every", "25", "--compress", "20", "--print-minutes", "10",
                            "--idle-minutes", "3", "--alexa-every", "0.5"])
    report = soak.run(args)
    assert report["kills"] >= 1
    assert report["events_acknowledged"] > 0 and report["events_lost"] == 0, report
    assert report["duplicate_acknowledged_deliveries"] == 0, report
    assert report["deliveries"] > 0 and report["drained_in_seconds"] is not None, report
    # Not asserted yet: statuses_lost. Some loaded runs with a SIGKILL ended with printers
    # whose stored status is older than the last one Herald acknowledged outside the
    # unflushed second before a kill; not diagnosed yet (Herald or this load generator).
    # Events and deliveries are unaffected. See docs/benchmarks.md, "Soak".
    assert report["alexa_ok"] > 0 and report["alexa_wrong"] == 0, report
    assert report["receiver_failed_on_purpose"] > 0, report
