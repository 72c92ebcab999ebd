"""``manage.py simulate_tenant``: generate a simulated tenant's telemetry and feed it to the ingest service.

The generator is :mod:`mailflow.simulator` (pure); this command adds the output, ingestion and the live feed.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
    OutputWrapper,
)
from django.utils import timezone

from core.models import Tenant
from mailflow.ingest import ingest_events
from mailflow.simulator import HOME_COUNTRIES, Event, Simulation, SimulationConfig, default_end, simulate

BATCH_SIZE = 5_000
PROGRESS_EVERY = 25_000

HELP = """\
Generate a simulated tenant and feed it to the ingest service.

--mailboxes users in one domain with --days of realistic mail, sign-ins, inbox rules and delegations before
--end; a benign newsletter owner (newsletter@<domain>) who mails 250-400 external subscribers every weekday,
under every sending limit; and --compromised accounts attacked on the last day, round-robin: an outbound
phishing burst, a slow spam run, a business-email compromise (finance rule + external forwarding) and a
full-access delegation with IMAP sign-ins. The same options give the same events (ids sim-<seed>-<n>), so
ingesting them again stores nothing twice; a run with another --end or size reports conflicts instead.

It prints the ground truth (who is compromised, how, since when), the number of events of each type and,
when it ingests, the accepted / duplicate / conflicting counts.

  (default)      ingest into the tenant (the default one, or --tenant) in strict batches of --batch-size
  --out FILE     also write the stream as NDJSON (one event per line, sorted keys); with '-' the stream
                 goes to stdout and the report to stderr
  --no-ingest    only generate (and write --out); the database is not touched
  --live         after the backfill, keep going: every --live-interval seconds, ingest the baseline mail
                 and sign-ins the tenant produces at the current time, until Ctrl-C or --live-seconds

examples:
  manage.py simulate_tenant --mailboxes 1000 --days 7 --compromised 5 --seed 1
  manage.py simulate_tenant --out events.ndjson --no-ingest
  manage.py simulate_tenant --mailboxes 200 --live
"""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description printed as written."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)  # keep the paragraphs and the table of HELP
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mailboxes", type=int, default=200, help="users in the tenant (default 200)")
        parser.add_argument("--days", type=int, default=8, help="days of history before --end (default 8)")
        parser.add_argument(
            "--compromised", type=int, default=4, help="compromised users, 0 to mailboxes-2 (default 4)"
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="random seed: same seed, same events (default 1)"
        )
        parser.add_argument(
            "--domain", default="contoso.example", help="the accepted domain (contoso.example)"
        )
        parser.add_argument(
            "--country", default="GB", choices=sorted(HOME_COUNTRIES), help="home country of the users (GB)"
        )
        parser.add_argument(
            "--end",
            help="end of the simulated period, ISO 8601 with an offset (default: now, truncated to the hour)",
        )
        parser.add_argument(
            "--tenant", help="slug of the tenant to ingest into (default: the default tenant)"
        )
        parser.add_argument(
            "--out", metavar="FILE", help="also write the events as NDJSON to FILE ('-': stdout)"
        )
        parser.add_argument(
            "--ground-truth", metavar="FILE", help="also write the ground truth as JSON to FILE"
        )
        parser.add_argument(
            "--no-ingest",
            action="store_true",
            help="do not ingest (generate and write --out only; no database)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help="events per ingest batch (5000)"
        )
        parser.add_argument(
            "--evasive",
            action="store_true",
            help="add the attacks shaped to stay under the thresholds, and benign look-alikes (issue 21)",
        )
        parser.add_argument(
            "--live",
            action="store_true",
            help="after the backfill, keep ingesting new baseline events at the current time until Ctrl-C",
        )
        parser.add_argument(
            "--live-seconds",
            type=float,
            help="with --live: stop after this many seconds (default: run until Ctrl-C)",
        )
        parser.add_argument(
            "--live-interval",
            type=float,
            default=5.0,
            help="with --live: seconds between batches (default 5)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ingest = not options["no_ingest"]
        if options["live"] and not ingest:
            raise CommandError("--live ingests as it goes; it cannot be combined with --no-ingest.")
        if options["batch_size"] < 1 or options["live_interval"] <= 0:
            raise CommandError("--batch-size and --live-interval must be positive.")
        to_stdout = options["out"] == "-"
        report = self.stderr if to_stdout else self.stdout  # keep stdout clean for the NDJSON stream
        report.style_func = None  # plain text, not the error colour
        config = self._config(options)
        tenant = self._tenant(options["tenant"]) if ingest else None

        started = time.perf_counter()
        simulation = simulate(config)
        elapsed = time.perf_counter() - started
        report.write(f"Generated {len(simulation.events):,} events in {elapsed:.1f} s.")
        if options["out"]:
            self._write_events(simulation, options["out"])
        if options["ground_truth"]:
            text = json.dumps(simulation.ground_truth.as_dict(), indent=2) + "\n"
            Path(options["ground_truth"]).write_text(text, encoding="utf-8")
        self._print_summary(simulation, report)

        if tenant is not None:
            totals = self._ingest(
                tenant, simulation.events, options["batch_size"], report, options["verbosity"]
            )
            report.write(
                f'Ingested into tenant "{tenant.slug}": accepted {totals["accepted"]:,}, '
                f"duplicates {totals['duplicates']:,}, conflicts {totals['conflicts']:,}, "
                f"warnings {totals['warnings']:,}."
            )
            if totals["conflicts"]:
                report.write(
                    "  Conflicts: this seed's ids already hold other content (an earlier run with another "
                    "--end or size); nothing was overwritten. Use another --seed (or the same --end)."
                )
            if options["live"]:
                self._live(simulation, tenant, options, report)

    # ------------------------------------------------------------------------------------------------ setup

    def _config(self, options: dict[str, Any]) -> SimulationConfig:
        if options["end"]:
            try:
                end = datetime.fromisoformat(options["end"])
            except ValueError as exc:
                raise CommandError(f"--end is not an ISO 8601 date-time: {options['end']!r}") from exc
            if end.utcoffset() is None:
                raise CommandError("--end needs a UTC offset (e.g. 2025-03-14T12:00:00+00:00 or ...Z).")
        else:
            end = default_end(timezone.now())
        try:
            return SimulationConfig(
                end=end,
                mailboxes=options["mailboxes"],
                days=options["days"],
                compromised=options["compromised"],
                seed=options["seed"],
                domain=options["domain"],
                home_country=options["country"],
                evasive=options["evasive"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _tenant(self, slug: str | None) -> Tenant:
        if not slug:
            return Tenant.objects.default()
        try:
            return Tenant.objects.get(slug=slug)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {slug!r}.") from None

    def _write_events(self, simulation: Simulation, out: str) -> None:
        if out == "-":
            self.stdout.style_func = None
            simulation.write_ndjson(self.stdout)
            self.stdout.flush()
            return
        with open(out, "w", encoding="utf-8", newline="\n") as stream:
            simulation.write_ndjson(stream)

    # ----------------------------------------------------------------------------------------------- output

    def _print_summary(self, simulation: Simulation, report: OutputWrapper) -> None:
        config, truth = simulation.config, simulation.ground_truth
        report.write(
            f"Tenant {config.domain} ({config.home_country}): {config.mailboxes} users + newsletter owner, "
            f"seed {config.seed}, {truth.start:%Y-%m-%d %H:%M} to {truth.end:%Y-%m-%d %H:%M} UTC."
        )
        report.write(f"Compromised mailboxes ({len(truth.compromised)}):")
        if truth.compromised:
            width = max(len(entry.address) for entry in truth.compromised)
            report.write(f"  {'address':<{width}}  {'scenario':<16} {'starts (UTC)':<20} attacker")
            for entry in truth.compromised:
                report.write(
                    f"  {entry.address:<{width}}  {entry.scenario:<16} {entry.starts_at:%Y-%m-%d %H:%M:%S}  "
                    f"{entry.attacker_country} {entry.attacker_ip}"
                )
                report.write(f"  {'':<{width}}  {entry.scenario.description}")
        for kind, addresses in truth.benign_lookalikes.items():
            report.write(f"Benign look-alike ({kind.replace('_', ' ')}): {', '.join(addresses)}")
        report.write(
            f"Benign newsletter owner: {truth.newsletter_owner} (250-400 external recipients every weekday, "
            "under every limit)."
        )
        counts = simulation.counts_by_type()
        listed = ", ".join(f"{kind} {count:,}" for kind, count in counts.items())
        report.write(f"Events: {listed} (total {sum(counts.values()):,}).")

    # ----------------------------------------------------------------------------------------------- ingest

    def _ingest(
        self, tenant: Tenant, events: list[Event], batch_size: int, report: OutputWrapper, verbosity: int
    ) -> dict[str, int]:
        """Ingest in strict batches; stop at the first invalid batch (earlier batches stay stored)."""
        totals = {"accepted": 0, "duplicates": 0, "conflicts": 0, "warnings": 0}
        next_progress = PROGRESS_EVERY
        for start in range(0, len(events), batch_size):
            batch = events[start : start + batch_size]
            result = ingest_events(tenant, batch, mode="strict", source="simulator", base_index=start)
            if result.errors:
                shown = "; ".join(
                    f"{events[e['index']]['id']}: {e['field']} {e['error']}" for e in result.errors[:5]
                )
                raise CommandError(
                    f"The ingest service refused events {start + 1}-{start + len(batch)} "
                    f"({len(result.errors)} errors, nothing of this batch stored): {shown}"
                )
            totals["accepted"] += result.accepted
            totals["duplicates"] += result.duplicates
            totals["conflicts"] += len(result.conflicts)
            totals["warnings"] += len(result.warnings)
            done = start + len(batch)
            if verbosity >= 2 or (verbosity >= 1 and done >= next_progress and done < len(events)):
                report.write(f"  ingested {done:,} / {len(events):,} events")
                next_progress = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
        return totals

    def _live(
        self, simulation: Simulation, tenant: Tenant, options: dict[str, Any], report: OutputWrapper
    ) -> None:
        """Ingest fresh baseline events every ``--live-interval`` s until Ctrl-C or ``--live-seconds``."""
        interval, limit = options["live_interval"], options["live_seconds"]
        feed = simulation.live_feed(session=int(time.time()))
        deadline = time.monotonic() + limit if limit is not None else None
        since = timezone.now()
        report.write(
            f"Live: new baseline events every {interval:g} s "
            + (f"for {limit:g} s." if limit is not None else "(Ctrl-C to stop).")
        )
        total = 0
        try:
            while deadline is None or time.monotonic() < deadline:
                pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                until = timezone.now()
                events = feed.between(since, until)
                since = until
                if not events:
                    continue
                result = ingest_events(tenant, events, mode="strict", source="simulator")
                if result.errors:
                    raise CommandError(f"The ingest service refused live events: {result.errors[:3]}")
                total += result.accepted
                kinds = ", ".join(
                    f"{kind} {sum(e['type'] == kind for e in events)}"
                    for kind in sorted({e["type"] for e in events})
                )
                report.write(f"  {until:%H:%M:%S} +{result.accepted} ({kinds})")
        except KeyboardInterrupt:
            report.write("")
        report.write(f"Live: stopped after {total:,} new events.")
