# Suppression.delivery was a foreign key up to runs (which sits above consent). It becomes the plain id
# it always stored: the column `delivery_id`, its values and its index stay; only the constraint goes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0001_topics_unsubscribes_suppressions_layouts"),
    ]

    operations = [
        # Drops the database's foreign key constraint (and nothing else).
        migrations.AlterField(
            model_name="suppression",
            name="delivery",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="runs.delivery",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="suppression", name="delivery"),
                migrations.AddField(
                    model_name="suppression",
                    name="delivery_id",
                    field=models.BigIntegerField(blank=True, db_index=True, null=True),
                ),
            ],
            database_operations=[],
        ),
    ]
