from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0008_webhook_messages')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Printer',
            name='spoken_name',
            field=fields.CharField(null=True, max_length=100),
        ),
    ]
