# A column with a database default: raw inserts (benchmarks/activity.py) need not name it.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0014_digestitem_dropped_at_release"),
    ]

    operations = [
        migrations.AddField(
            model_name="stepexecution",
            name="deferrals",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
    ]
