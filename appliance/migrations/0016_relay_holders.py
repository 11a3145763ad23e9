from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0015_home_assistant_printers')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RelayHolder',
            fields=[
                ('printer_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('address', fields.CharField(max_length=64)),
                ('holder', fields.CharField(max_length=64)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'relay_holders', 'app': 'herald', 'pk_attr': 'printer_id', 'table_description': "A printer whose tunnel one process holds, and that process's internal relay address."},
            bases=['Model'],
        ),
    ]
