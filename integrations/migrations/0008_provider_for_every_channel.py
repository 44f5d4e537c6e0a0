# EmailProvider becomes Provider, a provider of one channel (email is the first): the table is renamed
# (integrations_emailprovider -> integrations_provider) with its rows, ids and constraints, the foreign
# keys to it follow, and every existing row is an email provider.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0007_schedule_moves_to_workflows"),
        ("runs", "0008_delivery_skipped_status"),
    ]

    operations = [
        migrations.RenameModel(old_name="EmailProvider", new_name="Provider"),
        migrations.AddField(
            model_name="provider",
            name="channel",
            field=models.CharField(default="email", max_length=20),
        ),
        migrations.AlterField(
            model_name="sender",
            name="provider",
            field=models.ForeignKey(
                blank=True,
                help_text="Empty: Rowbell's own mail server.",
                limit_choices_to={"channel": "email"},
                null=True,
                on_delete=django.db.models.deletion.RESTRICT,
                related_name="senders",
                to="integrations.provider",
            ),
        ),
    ]
