from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0006_lease_description')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AppConnection',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('user', fields.ForeignKeyField('herald.User', source_field='user_id', db_constraint=True, to_field='id', related_name='app_connections', on_delete=OnDelete.CASCADE)),
                ('printer', fields.ForeignKeyField('herald.Printer', source_field='printer_id', null=True, db_constraint=True, to_field='id', related_name='app_connections', on_delete=OnDelete.SET_NULL)),
                ('printer_name', fields.CharField(max_length=100)),
                ('app_id', fields.CharField(max_length=100)),
                ('app_name', fields.CharField(max_length=100)),
                ('host_label', fields.CharField(unique=True, max_length=40)),
                ('app_token_hash', fields.CharField(unique=True, max_length=64)),
                ('bearer_token_hash', fields.CharField(unique=True, max_length=64)),
                ('basic_user', fields.CharField(max_length=64)),
                ('basic_password_hash', fields.CharField(max_length=64)),
                ('octoprint_api_key_app_name', fields.CharField(default='', max_length=60)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_reason', fields.CharField(default='', max_length=100)),
                ('webhook_target', fields.ForeignKeyField('herald.WebhookTarget', source_field='webhook_target_id', null=True, db_constraint=True, to_field='id', related_name='app_connections', on_delete=OnDelete.SET_NULL)),
                ('webhook_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'app_connections', 'app': 'herald', 'indexes': [Index(fields=['user_id']), Index(fields=['printer_id']), Index(fields=['webhook_target_id']), Index(fields=['webhook_expires_at'])], 'pk_attr': 'id', 'table_description': "What the portal made: an app's access to one printer of one user, with its credentials."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LiveLink',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('live_id', fields.CharField(unique=True, max_length=40)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('owner', fields.ForeignKeyField('herald.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='live_links', on_delete=OnDelete.CASCADE)),
                ('printer', fields.ForeignKeyField('herald.Printer', source_field='printer_id', db_constraint=True, to_field='id', related_name='live_links', on_delete=OnDelete.CASCADE)),
                ('connection', fields.ForeignKeyField('herald.AppConnection', source_field='connection_id', null=True, db_constraint=True, to_field='id', related_name='live_links', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('end_when_print_complete', fields.BooleanField(default=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ended_reason', fields.CharField(default='', max_length=40)),
                ('extra', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'live_links', 'app': 'herald', 'indexes': [Index(fields=['owner_id']), Index(fields=['printer_id']), Index(fields=['connection_id'])], 'pk_attr': 'id', 'table_description': 'A read-only page of one printer that anyone holding its link may open until it ends.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RegisteredApp',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('app_id', fields.CharField(unique=True, max_length=100)),
                ('name', fields.CharField(max_length=100)),
                ('logo_url', fields.TextField(default='', unique=False)),
                ('return_url_prefixes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'registered_apps', 'app': 'herald', 'pk_attr': 'id', 'table_description': 'An app an admin allowed to use the portal (or a built-in one an admin turned off).'},
            bases=['Model'],
        ),
    ]
