# Each Delivery keeps the tenant provider it went through, so that only that provider's tracking webhook
# reports on it. Messages sent before: the provider of the sender they name (Delivery.content["sender"]),
# so that their late bounces still land; a message without a sender went through the platform's server.

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
UPDATE runs_delivery AS d SET sent_via_id = s.provider_id
FROM integrations_sender AS s
WHERE d.channel = 'email' AND d.sent_via_id IS NULL AND s.tenant_id = d.tenant_id
  AND s.provider_id IS NOT NULL AND s.name = d.content ->> 'sender'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0008_delivery_skipped_status"),
        ("integrations", "0008_provider_for_every_channel"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="sent_via",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="integrations.provider",
            ),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
