from tortoise import migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('herald', '0005_rate_limits')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Lease',
            options={'table': 'leases', 'app': 'herald', 'pk_attr': 'name', 'table_description': 'Held by one process at a time until expires_at (see appliance.core.leases).'},
        ),
    ]
