from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0010_alexa_accounts')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Delivery',
            options={'table': 'webhook_deliveries', 'app': 'herald', 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['target_id', 'status']), Index(fields=['event_id'])], 'pk_attr': 'id', 'table_description': 'One event for one target, its request rendered when the event arrived and frozen (secrets sealed).'},
        ),
        ops.AddField(
            model_name='Delivery',
            name='sealed',
            field=fields.TextField(default='', unique=False),
        ),
    ]
