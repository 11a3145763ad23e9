from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0013_alexa_reminders')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AlexaNotification',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('herald.AlexaAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('reference_id', fields.CharField(unique=True, max_length=100)),
                ('api_endpoint', fields.CharField(max_length=200)),
                ('body', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('claimed_by', fields.CharField(null=True, max_length=80)),
                ('last_error', fields.CharField(default='', max_length=255)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'alexa_notifications', 'app': 'herald', 'indexes': [Index(fields=['account_id']), Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One Proactive Events notification to one Amazon account, kept until Alexa accepts it:'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='applied_revision',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='attempts',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='last_error',
            field=fields.CharField(default='', max_length=255),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='locked_by',
            field=fields.CharField(null=True, max_length=80),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='locked_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='remove',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='revision',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='AlexaReminder',
            name='want_finish',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
