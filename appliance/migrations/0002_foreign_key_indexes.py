from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='AccessToken',
            index=Index(fields=['user_id', 'client_id']),
        ),
        ops.AddIndex(
            model_name='AuthorizationCode',
            index=Index(fields=['user_id']),
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['event_id']),
        ),
        ops.AddIndex(
            model_name='DeliveryAttempt',
            index=Index(fields=['delivery_id']),
        ),
        ops.AddIndex(
            model_name='EmailToken',
            index=Index(fields=['user_id']),
        ),
        ops.AddIndex(
            model_name='Event',
            index=Index(fields=['received_at']),
        ),
        ops.AddIndex(
            model_name='Invite',
            index=Index(fields=['created_by_id']),
        ),
        ops.AddIndex(
            model_name='Invite',
            index=Index(fields=['used_by_id']),
        ),
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['printer_id', 'id']),
        ),
        ops.AddIndex(
            model_name='LinkRequest',
            index=Index(fields=['printer_id']),
        ),
        ops.AddIndex(
            model_name='LinkRequest',
            index=Index(fields=['approved_by_id']),
        ),
        ops.AddIndex(
            model_name='LoginSession',
            index=Index(fields=['user_id']),
        ),
        ops.AddIndex(
            model_name='OAuthClient',
            index=Index(fields=['owner_id']),
        ),
        ops.AddIndex(
            model_name='Printer',
            index=Index(fields=['owner_id', 'name']),
        ),
        ops.AddIndex(
            model_name='StatusSample',
            index=Index(fields=['printer_id', 'taken_at']),
        ),
        ops.AddIndex(
            model_name='WebhookTarget',
            index=Index(fields=['owner_id']),
        ),
    ]
