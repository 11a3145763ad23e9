from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0014_alexa_durable_reminders_and_notifications')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PublishChoice',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('printer', fields.OneToOneField('herald.Printer', source_field='printer_id', db_constraint=True, to_field='id', related_name='home_assistant_choice', on_delete=OnDelete.CASCADE)),
                ('publish', fields.BooleanField()),
                ('changed_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'home_assistant_printers', 'app': 'herald', 'pk_attr': 'id', 'table_description': "An owner's choice to publish a printer to the MQTT broker or not (no row: the default)."},
            bases=['Model'],
        ),
    ]
