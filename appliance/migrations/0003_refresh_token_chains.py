from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0002_foreign_key_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='AccessToken',
            name='grant_id',
            field=fields.CharField(null=True, max_length=36),
        ),
        ops.AddIndex(
            model_name='AccessToken',
            index=Index(fields=['grant_id']),
        ),
    ]
