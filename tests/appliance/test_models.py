"""Guards on the models and their migrations."""

from __future__ import annotations

from pathlib import Path

from tortoise.models import Model

import appliance.models as models

ROOT = Path(__file__).resolve().parents[2]


def test_model_docstrings_have_no_semicolons():
    # Tortoise turns a model's docstring into a table comment, and its SQLite
    # schema editor splits statements at ";" -- a semicolon there breaks the migration.
    for name in models.__all__:
        model = getattr(models, name)
        assert issubclass(model, Model)
        assert ";" not in (model.__doc__ or ""), f"{name}'s docstring contains ';'"


async def test_migrations_match_models():
    """A model change without a migration fails here: run scripts/makemigrations."""
    from tortoise.cli.cli import tortoise_cli_context
    from tortoise.migrations.autodetector import MigrationAutodetector

    from appliance.migration_config import TORTOISE_ORM

    async with tortoise_cli_context(TORTOISE_ORM) as ctx:
        writers = await MigrationAutodetector(ctx.apps, TORTOISE_ORM["apps"]).changes()
    assert not writers, "models changed without a migration: run scripts/makemigrations --name WHAT"
