"""``manage.py seed_demo``: seed the demo tenant once. `make demo` runs it every time; a tenant that already
has telemetry is left as it is (the simulator's attacks happen on the day before the seed, so re-seeding later
would move them and conflict with the stored events)."""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from core.models import Tenant
from mailflow.models import MessageEvent


class Command(BaseCommand):
    help = "Seed the default tenant with a simulated tenant unless it already has telemetry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mailboxes", type=int, default=200)
        parser.add_argument("--days", type=int, default=8)
        parser.add_argument("--compromised", type=int, default=4)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.default()
        existing = MessageEvent.objects.filter(tenant=tenant).count()
        if existing:
            self.stdout.write(f"The demo tenant already holds {existing} messages: not seeding again.")
            return
        call_command(
            "simulate_tenant",
            mailboxes=options["mailboxes"],
            days=options["days"],
            compromised=options["compromised"],
            seed=options["seed"],
            stdout=self.stdout,
        )
