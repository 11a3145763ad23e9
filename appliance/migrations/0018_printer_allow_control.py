from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0017_relay_edge_keys_audit_owner_access')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Printer',
            name='allow_control',
            field=fields.BooleanField(default=False),
        ),
    ]
