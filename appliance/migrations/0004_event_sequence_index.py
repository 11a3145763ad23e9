from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0003_refresh_token_chains')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Event',
            index=Index(fields=['printer_id', 'sequence']),
        ),
    ]
