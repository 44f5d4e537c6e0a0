# Schedule moves to workflows (it points at a workflow and a step, which sit above integrations). Only
# Django's state changes here; the table, its rows and its indexes stay (workflows 0003 adopts them).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0006_email_providers_and_senders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Schedule")],
            database_operations=[],
        ),
    ]
