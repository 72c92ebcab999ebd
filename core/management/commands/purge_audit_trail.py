from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.append_only import purge_audit_trail


class Command(BaseCommand):
    help = (
        "Delete audit events older than --before (a date, UTC). The only way past the database's append-only "
        "triggers; the purge itself is audited. The change feed is never purged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="ISO date, e.g. 2025-01-01: older rows go")
        parser.add_argument(
            "--actor", default="", help="who runs it, for the audit row (default: the OS user)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            before = datetime.fromisoformat(options["before"])
        except ValueError as exc:
            raise CommandError(f"--before must be an ISO date, got {options['before']!r}") from exc
        if before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
        if before > datetime.now(UTC):
            raise CommandError("--before is in the future: that would purge the whole trail.")
        actor = options["actor"] or f"manage.py ({_os_user()})"
        deleted = purge_audit_trail(before, actor_label=actor)
        self.stdout.write(f"Deleted {deleted} audit event(s) older than {before.isoformat()}.")


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
