from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0011_delivery_sealed_request')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Printer',
            name='plugin_version',
            field=fields.CharField(null=True, max_length=40),
        ),
        ops.AddField(
            model_name='User',
            name='time_zone_chosen',
            field=fields.BooleanField(default=False),
        ),
    ]
