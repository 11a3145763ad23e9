"""Backups with PostgreSQL, as docs/deploy.md describes them: pg_dump, pg_restore, secret.key."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.accounts import users as accounts
from appliance.accounts.models import User
from appliance.app import create_app
from appliance.printers.models import Printer
from appliance.webhooks import targets as webhook_service
from appliance.webhooks.models import WebhookTarget
from tests.support import pg
from tests.support.users import PASSWORD, make_user

ROOT = Path(__file__).resolve().parents[3]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install postgresql-client (.ci/run does)")
    return path


# PostgreSQL only: SQLite backups are `herald backup`, which tests/deploy run in the image and the Pi install.
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_dump_restored_into_a_new_database_keeps_accounts_and_secrets(backend, settings, clock, tmp_path):
    EXECUTOR_CACHE.clear()  # apps built here, not by the fixture: the statement cache is per backend
    first = create_app(settings, clock=clock)
    async with first.test_app():
        herald = first.extensions["herald"]
        owner = await make_user("ada@example.com")
        await Printer.create(id=str(uuid.uuid4()), owner=owner, name="Prusa", key_hash="k" * 64, online=False)
        target = await webhook_service.create_target(herald, owner, {
            "name": "home", "url": "https://example.com/hook", "events": ["print.done"], "api_secret": "s3cret"})
        signing = herald.secret_box.decrypt(target.signing_secret)

    dump = tmp_path / "herald.dump"
    await asyncio.to_thread(subprocess.run, [_tool("pg_dump"), "--format=custom", f"--file={dump}",
                                             settings.database_url], check=True, capture_output=True, timeout=60)
    restored = f"restored_{uuid.uuid4().hex[:12]}"
    await pg.create_database(restored)
    try:
        await asyncio.to_thread(subprocess.run, [_tool("pg_restore"), "--no-owner", f"--dbname={pg.url(restored)}",
                                                 str(dump)], check=True, capture_output=True, timeout=60)
        # The same data directory (secret.key) with the restored database.
        EXECUTOR_CACHE.clear()
        second = create_app(settings.replace(database_url=pg.url(restored)), clock=clock)
        async with second.test_app():
            box = second.extensions["herald"].secret_box
            user = await accounts.login(second.extensions["herald"], "ada@example.com", PASSWORD,
                                        address="192.0.2.1")
            assert user is not None and await User.all().count() == 1
            assert [p.name for p in await Printer.all()] == ["Prusa"]
            copy = await WebhookTarget.get(name="home")
            assert box.decrypt(copy.signing_secret) == signing
            assert box.decrypt(copy.api_secret) == "s3cret"
    finally:
        await pg.drop_database(restored)


def test_herald_backup_points_postgresql_users_to_the_documented_way(tmp_path):
    env = {**os.environ, "HERALD_DATABASE_URL": pg.url("test"), "HERALD_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "appliance", "backup", str(tmp_path / "x.sqlite3")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pg_dump" in result.stderr and "docs/deploy.md" in result.stderr
    assert "Backup and restore (PostgreSQL)" in (ROOT / "docs" / "deploy.md").read_text()
