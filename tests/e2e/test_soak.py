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
    # No status older than the last flush lost: checked right after each SIGKILL against the
    # newest status the database held, and after the clean stop against the last one acked.
    assert report["statuses_checked"] == 200 and report["statuses_lost"] == 0, report
    assert report["alexa_ok"] > 0 and report["alexa_wrong"] == 0, report
    assert report["receiver_failed_on_purpose"] > 0, report


def test_the_status_check_tells_a_lost_status_from_one_after_the_last_flush():
    """The soak's status check itself: what the last flush covered must be there."""
    soak = soak_module()
    # [marker, sent, acknowledged]: a printer that sent three statuses, acked at 10, 20 and 30.
    sent = {"p": [[1.0, 9.0, 10.0], [2.0, 19.0, 20.0], [3.0, 29.0, 30.0]]}
    # The last flush's newest status was accepted at 25: the one acked at 20 must be stored.
    other_printer_flushed_at_25 = {"q": (9.0, 25.0)}
    lost = soak.check_kill(sent, {"p": (1.0, 10.0), **other_printer_flushed_at_25}, killed_at=31.0)
    assert lost["lost"] == ["p"] and lost["last_flush_age"] == 6.0
    kept = soak.check_kill(sent, {"p": (2.0, 20.0), **other_printer_flushed_at_25}, killed_at=31.0)
    assert kept["lost"] == [] and kept["unflushed"] == 1  # the one acked at 30 came after that flush
    newer = soak.check_kill(sent, {"p": (3.0, 30.0)}, killed_at=31.0)
    assert newer["lost"] == [] and newer["unflushed"] == 0
    # Nothing flushed at all: nothing was promised.
    assert soak.check_kill(sent, {"p": (None, None)}, killed_at=31.0)["lost"] == []
    # The next lifetime: the status lost at that kill (acked at 30, after the flush) stays
    # allowed to be lost; the one required then still is, and this lifetime's too.
    first = soak.check_kill(sent, {"p": (2.0, 20.0), **other_printer_flushed_at_25}, killed_at=31.0)
    later = {"p": [*sent["p"], [4.0, 49.0, 50.0]]}
    again = soak.check_kill(later, {"p": (2.0, 20.0), "q": (9.0, 45.0)}, killed_at=60.0, previous=first)
    assert again["lost"] == [] and again["unflushed"] == 1  # the one acked at 50 came after the flush at 45
    regressed = soak.check_kill(later, {"p": (1.0, 10.0), "q": (9.0, 45.0)}, killed_at=60.0, previous=first)
    assert regressed["lost"] == ["p"]
    flushed = soak.check_kill(later, {"p": (2.0, 20.0), "q": (9.0, 55.0)}, killed_at=60.0, previous=first)
    assert flushed["lost"] == ["p"]  # acked at 50, before the flush at 55: must be stored
