from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0016_relay_holders')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OwnerRelayAccess',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('herald.User', source_field='user_id', db_constraint=True, to_field='id', related_name='owner_relay_accesses', on_delete=OnDelete.CASCADE)),
                ('printer', fields.ForeignKeyField('herald.Printer', source_field='printer_id', db_constraint=True, to_field='id', related_name='owner_relay_accesses', on_delete=OnDelete.CASCADE)),
                ('host_label', fields.CharField(unique=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('bytes_up', fields.BigIntField(default=0)),
                ('bytes_down', fields.BigIntField(default=0)),
            ],
            options={'table': 'owner_relay_accesses', 'app': 'herald', 'unique_together': (('user_id', 'printer_id'),), 'indexes': [Index(fields=['printer_id'])], 'pk_attr': 'id', 'table_description': "The printer owner's own way to OctoPrint through the relay, from the printer page."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RelayHandoff',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_hash', fields.CharField(unique=True, max_length=64)),
                ('access', fields.ForeignKeyField('herald.OwnerRelayAccess', source_field='access_id', db_constraint=True, to_field='id', related_name='handoffs', on_delete=OnDelete.CASCADE)),
                ('user_id', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'relay_handoffs', 'app': 'herald', 'indexes': [Index(fields=['expires_at']), Index(fields=['access_id'])], 'pk_attr': 'id', 'table_description': "A one-time code that takes the owner from Herald's page to the relayed origin."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AppConnection',
            name='bytes_down',
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name='AppConnection',
            name='bytes_up',
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name='AppConnection',
            name='octoprint_api_key_sealed',
            field=fields.TextField(default='', unique=False),
        ),
    ]
