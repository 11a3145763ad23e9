from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0012_plugin_version_and_chosen_time_zone')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AlexaReminder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('herald.User', source_field='user_id', db_constraint=True, to_field='id', related_name='alexa_reminders', on_delete=OnDelete.CASCADE)),
                ('alexa_user_id', fields.CharField(max_length=512)),
                ('api_endpoint', fields.CharField(max_length=200)),
                ('printer', fields.ForeignKeyField('herald.Printer', source_field='printer_id', db_constraint=True, to_field='id', related_name='alexa_reminders', on_delete=OnDelete.CASCADE)),
                ('job', fields.CharField(default='', max_length=255)),
                ('alert_token', fields.CharField(max_length=512)),
                ('finish_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('time_zone', fields.CharField(default='UTC', max_length=64)),
                ('locale', fields.CharField(default='en-US', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'alexa_reminders', 'app': 'herald', 'indexes': [Index(fields=['alexa_user_id']), Index(fields=['user_id']), Index(fields=['printer_id'])], 'pk_attr': 'id', 'table_description': 'An Alexa reminder Herald set for "tell me when my print is done": the Amazon account'},
            bases=['Model'],
        ),
    ]
