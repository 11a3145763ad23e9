"""The data directory and the database are for Herald's own account only (0700 / 0600)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from appliance.core.db import tortoise_config
from appliance.core.settings import Settings
from tests.conftest import free_port
from tests.support.server import LiveServer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_data_directory_under_herald_serve_is_private(tmp_path):
    previous = os.umask(0o022)  # the usual umask: without Herald's care, 0755 and 0644
    try:
        server = LiveServer(data_dir=tmp_path / "data", port=free_port()).start()
    finally:
        os.umask(previous)
    try:
        data = tmp_path / "data"
        assert mode(data) == 0o700
        assert mode(data / "secret.key") == 0o600
        database = data / "herald.sqlite3"
        assert mode(database) == 0o600
        side = [data / "herald.sqlite3-wal", data / "herald.sqlite3-shm"]
        assert any(p.exists() for p in side)  # WAL mode: the side files exist while it runs
        for path in side:
            if path.exists():
                assert mode(path) == 0o600, path
    finally:
        server.stop()


def test_an_existing_install_is_tightened_at_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "herald.sqlite3"
    sqlite3.connect(database).close()
    for path in (database, data / "herald.sqlite3-wal", data / "herald.sqlite3-shm"):
        path.touch()
        path.chmod(0o644)
    tortoise_config(Settings.build(data_dir=str(data)))
    assert mode(data) == 0o700
    for path in (database, data / "herald.sqlite3-wal", data / "herald.sqlite3-shm"):
        assert mode(path) == 0o600, path


def test_a_backup_is_as_private_as_the_database(tmp_path):
    data = tmp_path / "data"
    tortoise_config(Settings.build(data_dir=str(data)))
    sqlite3.connect(data / "herald.sqlite3").close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}, "HERALD_DATA_DIR": str(data)}
    previous = os.umask(0o022)
    try:
        subprocess.run([sys.executable, "-m", "appliance", "backup", str(tmp_path / "copy.sqlite3")],
                       env=env, check=True, capture_output=True)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "copy.sqlite3") == 0o600
