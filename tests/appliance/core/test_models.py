"""Guards on the models and their migrations."""

from __future__ import annotations

import importlib
from pathlib import Path

from tortoise.models import Model

from appliance.core.db import MODEL_MODULES

ROOT = Path(__file__).resolve().parents[3]


def test_model_docstrings_have_no_semicolons():
    # Tortoise turns a model's docstring into a table comment, and its SQLite
    # schema editor splits statements at ";" -- a semicolon there breaks the migration.
    found = 0
    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for name, model in vars(module).items():
            if isinstance(model, type) and issubclass(model, Model) and model.__module__ == module_name:
                found += 1
                assert ";" not in (model.__doc__ or ""), f"{name}'s docstring contains ';'"
    assert found >= 19  # every model of every area was looked at


async def test_migrations_match_models():
    """A model change without a migration fails here: run scripts/makemigrations."""
    from tortoise.cli.cli import tortoise_cli_context
    from tortoise.migrations.autodetector import MigrationAutodetector

    from appliance.migration_config import TORTOISE_ORM

    async with tortoise_cli_context(TORTOISE_ORM) as ctx:
        writers = await MigrationAutodetector(ctx.apps, TORTOISE_ORM["apps"]).changes()
    assert not writers, "models changed without a migration: run scripts/makemigrations --name WHAT"


_PG_UNINDEXED = """
    SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND NOT EXISTS (
        SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])"""


async def test_every_foreign_key_leads_an_index(app, backend):
    """Without one, listing a user's printers, a printer's chart or jobs, and every
    cascading delete scans the whole child table: fine with ten rows, not with
    10,000 printers and their 720 chart points each."""
    from tortoise import Tortoise

    connection = Tortoise.get_connection("default")
    if backend == "postgres":
        rows = await connection.execute_query_dict(_PG_UNINDEXED)
        missing = sorted(f"{row['tbl'].strip(chr(34))}.{row['col']}" for row in rows)
        assert not missing, f"foreign keys without an index: {missing}"
        return
    tables = [row["name"] for row in await connection.execute_query_dict(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    missing = []
    for table in tables:
        keys = await connection.execute_query_dict(f'SELECT "from" FROM pragma_foreign_key_list(\'{table}\')')
        leading = set()
        for index in await connection.execute_query_dict(f"SELECT name FROM pragma_index_list('{table}')"):
            columns = await connection.execute_query_dict(
                f"SELECT name FROM pragma_index_info('{index['name']}') ORDER BY seqno")
            if columns:
                leading.add(columns[0]["name"])
        missing += [f"{table}.{key['from']}" for key in keys if key["from"] not in leading]
    assert not missing, f"foreign keys without an index: {missing}"
