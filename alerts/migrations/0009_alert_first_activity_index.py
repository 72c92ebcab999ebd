"""The dashboard's trend counts alerts by first activity, stacked by severity (issue 16): an index on
(first_activity_at, severity) turns its window into an index-only scan instead of reading every alert."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("alerts", "0008_seed_sequence_policy")]

    operations = [
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(fields=["first_activity_at", "severity"], name="alert_first_activity_idx"),
        ),
    ]
