"""Partition sign-ins and directory changes (daily) by event time on PostgreSQL (issue 17).

Existing rows are moved into the new tables (a rewrite of each: on a large database, run it in a
maintenance window). SQLite keeps plain tables: nothing happens there.
"""

from django.db import migrations

from core.partitions import partitioning_operation


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0004_event_unique_keys_include_time")]

    operations = [
        partitioning_operation(
            [
                # (table, time column, days per partition, retention table)
                ("mailboxes_signin", "time", 1, "sign_ins"),
                ("mailboxes_directorychange", "at", 1, "directory_changes"),
            ]
        )
    ]
