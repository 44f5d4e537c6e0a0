# Schedule comes from integrations (integrations 0007) with its table `integrations_schedule`, its rows
# and its indexes unchanged: only Django's state changes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("workflows", "0002_step_branch_path"),
        ("integrations", "0007_schedule_moves_to_workflows"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Schedule",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("rule", models.JSONField(help_text="The schedule trigger's cleaned config.")),
                        ("next_fire_at", models.DateTimeField()),
                        ("last_fired_at", models.DateTimeField(blank=True, null=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "step",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="workflows.step",
                            ),
                        ),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="tenants.tenant",
                            ),
                        ),
                        (
                            "workflow",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="schedule",
                                to="workflows.workflow",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "integrations_schedule",
                        "indexes": [
                            models.Index(fields=["next_fire_at"], name="schedule_due"),
                            models.Index(fields=["tenant", "next_fire_at"], name="schedule_tenant_next"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
