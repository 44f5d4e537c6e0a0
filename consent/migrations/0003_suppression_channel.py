# The suppression list belongs to a channel (email is the first): every existing entry is an email
# address; an address is unique per tenant and channel.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0002_suppression_delivery_id_not_a_foreign_key"),
        ("tenants", "0003_invitations_and_audit_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="suppression",
            name="channel",
            field=models.CharField(default="email", max_length=20),
        ),
        migrations.RemoveConstraint(model_name="suppression", name="suppression_unique_address"),
        migrations.AddConstraint(
            model_name="suppression",
            constraint=models.UniqueConstraint(
                fields=("tenant", "channel", "address"), name="suppression_unique_address"
            ),
        ),
    ]
