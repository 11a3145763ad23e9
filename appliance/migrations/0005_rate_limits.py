from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields


async def unlogged_on_postgres(apps, schema_editor) -> None:
    # Rate-limit windows need no crash safety or replication: skipping the WAL makes
    # every counted hit cheaper, and a crash merely forgets the current windows.
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE rate_limits SET UNLOGGED")


async def logged_on_postgres(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE rate_limits SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [('herald', '0004_event_sequence_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateLimitWindow',
            fields=[
                ('key_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('group_hash', fields.CharField(null=True, db_index=True, max_length=64)),
                ('hits', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('expires_at', fields.FloatField(db_index=True)),
            ],
            options={'table': 'rate_limits', 'app': 'herald', 'pk_attr': 'key_hash', 'table_description': 'The hits of one rate-limit key still in its window, shared by all processes on PostgreSQL.'},
            bases=['Model'],
        ),
        ops.RunPython(unlogged_on_postgres, logged_on_postgres),
    ]
