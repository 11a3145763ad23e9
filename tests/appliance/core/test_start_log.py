"""The real server's start log reads as a start: no "shutdown" line before "serving"."""

from __future__ import annotations

import io
import logging
import urllib.request
import zipfile

from appliance.core.db import apply_migrations
from appliance.core.settings import Settings
from tests.conftest import free_port
from tests.support.server import LiveServer


def test_start_log_reads_cleanly_and_the_plugin_is_served(tmp_path):
    server = LiveServer(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        # A real socket client, no login: what OctoPrint's Plugin Manager fetches.
        with urllib.request.urlopen(server.url + "/plugin/octoprint-herald.zip", timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "application/zip"
            names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
        assert "OctoPrint-Herald/pyproject.toml" in names
    finally:
        assert server.stop() == 0, server.log()
    log = server.log()
    start, _, after = log.partition("serving at")
    assert after, log
    assert "Database schema up to date" in start, log
    assert "shutdown" not in start.lower(), log
    # The real shutdown is still logged as one.
    assert "Tortoise-ORM shutdown" in after, log


async def test_migrations_log_up_to_date_and_leave_tortoise_logging_alone(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    await apply_migrations(Settings.build(data_dir=str(tmp_path)))
    messages = [record.getMessage() for record in caplog.records]
    assert "Database schema up to date" in messages
    assert "Tortoise-ORM shutdown" not in messages
    # Only that message, and only during the migration step, is dropped.
    assert logging.getLogger("tortoise").filters == []
    caplog.clear()
    logging.getLogger("tortoise").info("Tortoise-ORM shutdown")
    assert [record.getMessage() for record in caplog.records] == ["Tortoise-ORM shutdown"]


def test_serve_stops_when_the_migrations_fail_in_their_own_process(tmp_path):
    # herald serve migrates in a child process (appliance.cli.migrate_apart): its failure still
    # stops the start, with the reason in the log, and nothing is served. The database is one
    # that refuses connections (nothing listens on port 1 of 127.0.0.1).
    server = LiveServer(data_dir=tmp_path / "data", port=free_port(),
                        env={"HERALD_DATABASE_URL": "postgres://herald@127.0.0.1:1/herald"})
    try:
        server.start(timeout=60)
    except RuntimeError:
        pass
    else:
        raise AssertionError("herald serve answered without a database to migrate")
    finally:
        code = server.stop()
    log = server.log()
    assert code == 1, log
    assert "The database schema could not be brought up to date" in log, log
    assert "Connect call failed" in log, log  # the child's reason reaches the log
    assert "Migrations did not finish (exit code 1): not serving" in log, log
    assert "serving at" not in log, log


def test_a_file_that_is_not_a_database_stops_the_start_with_a_clear_message(tmp_path):
    import os
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    database = data / "herald.sqlite3"
    database.write_bytes(b"not a database, some other file copied here by mistake\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
           "HERALD_DATA_DIR": str(data), "HERALD_PORT": str(free_port())}
    # Before the check this hung for ever (Tortoise waited on its own lock): the timeout only guards that.
    for command in (["serve"], ["create-admin", "--email", "a@example.com", "--password", "x" * 12]):
        done = subprocess.run([sys.executable, "-m", "appliance", *command], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{database} is not a SQLite database" in done.stderr and "herald backup" in done.stderr
    assert database.read_bytes() == b"not a database, some other file copied here by mistake\n"  # left as it was
