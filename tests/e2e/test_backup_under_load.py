"""``herald backup`` while printers push and webhooks deliver; the copy restored on a new instance.

The soak's load generator (scripts/soak.py) drives a real ``herald serve``; ``herald backup``
runs in the middle of it. The copy must be a consistent snapshot (integrity ok; for every
table, exactly the rows the running database had up to the copy's last id), and a new
instance started on it (with the data directory's secret.key) must serve the same accounts,
printers (their keys work), webhook targets (their secrets decrypt) and deliveries.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import requests

from tests.e2e.test_soak import soak_module

TABLES = {  # table -> the columns that must be identical
    "users": "id, email, password_hash, is_admin",
    "printers": "id, owner_id, name, key_hash",
    "webhook_targets": "id, owner_id, url, signing_secret",
    "webhook_deliveries": "id, target_id, event_id, webhook_id, body",
    "events": "id, printer_id, event_id, type, sequence",
}


def rows(path, table: str, up_to: int | None = None) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        sql = f"SELECT {TABLES[table]} FROM {table}"  # noqa: S608 - names from TABLES
        if up_to is not None:
            sql += f" WHERE id <= {int(up_to)}"
        return sorted(conn.execute(sql + " ORDER BY id").fetchall(), key=repr)


def test_a_backup_taken_under_load_restores_identical_on_a_new_instance(tmp_path):
    soak = soak_module()
    args = soak.parse_args(["--seconds", "30", "--printers", "100", "--kill-every", "1000", "--compress", "20",
                            "--print-minutes", "5", "--idle-minutes", "1", "--alexa-every", "1"])
    ctx = soak.multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    receiver = ctx.Process(target=soak._receiver_main, args=(ports, 0.2), daemon=True)
    receiver.start()
    hook = f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    database = first_dir / "herald.sqlite3"
    first = soak.Herald(first_dir, soak.free_port(), f"sqlite://{database}", {"HERALD_WEBHOOK_ALLOW_PRIVATE": "true"})
    second = None
    try:
        from appliance.core.db import apply_migrations
        from appliance.core.settings import Settings

        asyncio.run(apply_migrations(Settings.build(data_dir=str(first_dir))))
        pairs = asyncio.run(soak.seed(first_dir, f"sqlite://{database}", args.printers, hook))
        first.start()
        tally = soak.Tally()
        load = threading.Thread(target=lambda: asyncio.run(soak.drive(first, pairs, args, tally)))
        load.start()
        time.sleep(12)  # printers pushing, deliveries going out
        backup = tmp_path / "backup.sqlite3"
        made = subprocess.run([sys.executable, "-m", "appliance", "backup", str(backup)],
                              env={**first.environ_for_cli(), "HERALD_DATA_DIR": str(first_dir)},
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
        load.join(120)
        assert tally.acked_events, "no load reached Herald"
        first.stop()

        with sqlite3.connect(backup) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # A consistent snapshot: each table holds exactly the running database's rows up to
        # its last id (rows written later are absent, none half-present). Rows that change
        # after they are written (a delivery's status, a printer's status) are not compared.
        for table in TABLES:
            copied = rows(backup, table)
            last = max((r[0] for r in copied if isinstance(r[0], int)), default=None)
            if table == "printers":
                assert copied == rows(database, table)
            else:
                assert copied == rows(database, table, last), table
        assert rows(backup, "events"), "the backup was taken before any event arrived"

        # Restore on a new instance: the copy and the data directory's key.
        second_dir.mkdir()
        shutil.copy(backup, second_dir / "herald.sqlite3")
        shutil.copy(first_dir / "secret.key", second_dir / "secret.key")
        second = soak.Herald(second_dir, soak.free_port(), f"sqlite://{second_dir / 'herald.sqlite3'}", {})
        second.start()
        pid, key = pairs[0]
        answer = requests.put(second.url + "/api/v1/printer/status", json={"state": "Operational",
                              "state_id": "operational"}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 204  # the printers' keys work on the restored instance
        second.stop()
        restored = second_dir / "herald.sqlite3"
        for table in ("users", "webhook_targets"):
            assert rows(restored, table) == rows(backup, table), table
        # Events: the copy's, plus the printer.online the check-in above recorded.
        copied_events = rows(backup, "events")
        assert rows(restored, "events", max(r[0] for r in copied_events)) == copied_events
        # Deliveries: the same rows (those in flight at the copy went back to the queue).
        assert [r[:4] for r in rows(restored, "webhook_deliveries")] == [r[:4] for r in rows(backup, "webhook_deliveries")]
        from appliance.core.secrets import SecretBox

        box = SecretBox.from_data_dir(second_dir)
        for _id, _owner, _url, secret in rows(restored, "webhook_targets"):
            assert box.decrypt(secret)  # the target's signing secret decrypts with the copied key
    finally:
        first.stop()
        if second is not None:
            second.stop()
        receiver.terminate()
        receiver.join(10)
