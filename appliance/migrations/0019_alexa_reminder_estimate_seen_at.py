from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0018_printer_allow_control')]

    initial = False

    operations = [
        ops.AddField(
            model_name='AlexaReminder',
            name='estimate_seen_at',
            field=fields.DatetimeField(null=True),
        ),
    ]
