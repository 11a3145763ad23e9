from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0019_alexa_reminder_estimate_seen_at')]

    initial = False

    operations = [
        ops.AddField(
            model_name='RelayHandoff',
            name='session_id',
            field=fields.IntField(null=True),
        ),
    ]
