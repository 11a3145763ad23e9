from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0009_printer_spoken_name')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AlexaAccount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('herald.User', source_field='user_id', db_constraint=True, to_field='id', related_name='alexa_accounts', on_delete=OnDelete.CASCADE)),
                ('alexa_user_id', fields.CharField(unique=True, max_length=512)),
                ('api_endpoint', fields.CharField(max_length=200)),
                ('notify', fields.BooleanField(default=False)),
                ('subscribed', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'alexa_accounts', 'app': 'herald', 'indexes': [Index(fields=['user_id'])], 'pk_attr': 'id', 'table_description': "An Amazon account that asked Herald's skill something, as the Herald user it was"},
            bases=['Model'],
        ),
    ]
