from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.retention import purge_expired, retained_tables, retention_days


class Command(BaseCommand):
    help = (
        "Delete telemetry older than its retention window (RETENTION_DAYS, RETENTION_DAYS_<TABLE>), as beat "
        "does every hour; events behind an alert and mailboxes under an open investigation are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        for table in retained_tables():
            days = retention_days(table.name)
            self.stdout.write(f"{table.name}: {f'{days} days' if days else 'kept forever'}")
        purged = purge_expired(dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        for tenant, counts in purged.items():
            rows = ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "nothing"
            self.stdout.write(f"tenant {tenant}: {verb} {rows}")
