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
