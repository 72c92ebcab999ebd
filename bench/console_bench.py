"""Console page benchmark: server time of the busiest pages on a large tenant.

1. Seed, straight into the tables with PostgreSQL ``COPY`` (the ingest service is far too slow for this size):
   ``BENCH_MAILBOXES`` (5,000) mailboxes; ``BENCH_MESSAGES`` (1,000,000) message events over 30 days, working-
   hours shaped, from a skewed set of senders (a few send a lot), 1-5 recipients, ~1% spam / phish; and
   ``BENCH_ALERTS`` (100,000) alerts over 90 days with their evidence (message evidence names real message
   events of the user): mostly informational / low, nearly all resolved except in the last week, skewed to a
   few users; restrictions behind the "User restricted" alerts; ``BENCH_INVESTIGATIONS`` (2,000)
   investigations with their alerts, analyzer log, findings, actions and audit trail.
2. With the Django test client (an administrator, ``force_login``), ``BENCH_REQUESTS`` (50) requests after 3
   warm-ups to each of: the dashboard, the alert list (default, and filtered to a week's open high-severity
   alerts), the alert list searched by a user, and the page of the investigation with the most alerts. Prints
   p50 / p95 / max server time in ms, and the number of SQL queries per request.

Uses its own database ``soc_console_bench_console`` on ``DATABASE_URL``'s server (dropped afterwards).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from bisect import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.setdefault("STATIC_MANIFEST", "false")  # pages render without collectstatic

from bench.common import bench_database, percentile

DATABASE = "soc_console_bench_console"
DOMAIN = "bench.example"
PARTNERS = [f"partner{n}.example.net" for n in range(300)]
WARMUPS = 3
FILTERED = {"status": "open", "severity": "high", "last": "7d"}
# Relative weights of the policies among the alerts (by kind): rule creations and sign-ins dominate.
POLICY_MIX = {
    "forwarding_rule": 30,
    "sign_in": 25,
    "delegation": 15,
    "inbox_manipulation": 10,
    "sending_pattern": 8,
    "sending_limit": 5,
    "forwarding": 4,
    "restriction": 3,
}
CLASSIFICATIONS = ("tp_compromised", "tp_phishing", "informational", "informational", "false_positive")
WORK_HOURS = [1, 1, 1, 1, 1, 2, 4, 10, 30, 45, 45, 40, 30, 40, 45, 40, 35, 20, 10, 6, 4, 3, 2, 1]
WORK_HOURS_CUM = list(accumulate(WORK_HOURS))


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def copy_rows(model, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """``COPY`` ``rows`` (values for ``columns``) into ``model``'s table; every other column gets the field's
    default (Django sets defaults in Python, not in the database). JSON values go as ``json.dumps`` text."""
    from django.db import connection
    from django.db.models import DateTimeField, JSONField

    now = datetime.now(UTC)
    extra_columns, extra_values = [], []
    for field in model._meta.concrete_fields:
        if field.column in columns or field.primary_key:
            continue
        if isinstance(field, DateTimeField) and (field.auto_now or field.auto_now_add):
            value = now
        elif field.has_default():
            value = field.get_default()
        elif field.null:
            value = None
        else:
            value = ""
        if isinstance(field, JSONField) and value is not None:
            value = json.dumps(value)
        extra_columns.append(field.column)
        extra_values.append(value)
    names = ", ".join(f'"{name}"' for name in [*columns, *extra_columns])
    count = 0
    statement = f'COPY "{model._meta.db_table}" ({names}) FROM STDIN'
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([*row, *extra_values])
            count += 1
    return count


def reset_sequence(model) -> None:
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608 - our table names
            f'COALESCE((SELECT MAX(id) FROM "{table}"), 1))'
        )


def skewed_weights(rng: random.Random, count: int, sigma: float) -> list[float]:
    """Cumulative lognormal weights: most items get little, a few get a lot."""
    return list(accumulate(rng.lognormvariate(0, sigma) for _ in range(count)))


def pick(rng: random.Random, cumulative: list[float]) -> int:
    return bisect(cumulative, rng.random() * cumulative[-1])


def working_time(rng: random.Random, now: datetime, days: int) -> datetime:
    day = now - timedelta(days=rng.randrange(days))
    hour = bisect(WORK_HOURS_CUM, rng.random() * WORK_HOURS_CUM[-1])
    moment = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=0)
    return moment if moment <= now else moment - timedelta(days=1)


def seed(rng: random.Random, now: datetime, sizes: dict[str, int]) -> dict:
    """Everything the pages read, in bulk. Returns what the measurements need (the admin, ids)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from alerts.models import Alert, AlertEvidence
    from alerts.services import ensure_default_policies
    from core.models import AuditEvent, Tenant
    from core.roles import ADMINISTRATOR, OPERATOR, sync_roles
    from investigations.models import AnalyzerRun, Finding, Investigation, RemediationAction
    from mailboxes.models import AcceptedDomain, Mailbox
    from mailflow.ingest import MESSAGE_COLUMNS
    from mailflow.models import MessageEvent
    from restricted_users.models import Restriction

    started = time.perf_counter()
    sync_roles()
    users = get_user_model()
    admin = users.objects.create_user("bench.admin", password="unused-bench-password")
    admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
    analysts = [admin]
    for n in range(4):
        analyst = users.objects.create_user(f"analyst{n}", password="unused-bench-password")
        analyst.groups.add(Group.objects.get(name=OPERATOR))
        analysts.append(analyst)
    tenant = Tenant.objects.default()
    policies = ensure_default_policies(tenant)
    kinds = [kind for kind in POLICY_MIX if kind in policies]
    policy_cum = list(accumulate(POLICY_MIX[kind] for kind in kinds))
    AcceptedDomain.objects.get_or_create(tenant=tenant, domain=DOMAIN)

    mailboxes = Mailbox.objects.bulk_create(
        Mailbox(
            tenant=tenant,
            address=f"user{n:05d}@{DOMAIN}",
            display_name=f"User {n:05d}",
            department=f"Department {n % 12}",
            vip=n % 97 == 0,
            first_seen=now - timedelta(days=120),
        )
        for n in range(sizes["mailboxes"])
    )
    mailbox_ids = [m.pk for m in mailboxes]
    print(f"  {len(mailbox_ids):,} mailboxes", flush=True)

    # Messages: the event ids each user sent (for alert evidence) are kept by mailbox index.
    sender_cum = skewed_weights(rng, len(mailbox_ids), 1.2)
    sent_by: dict[int, list[tuple[str, datetime]]] = defaultdict(list)

    def messages():
        for n in range(sizes["messages"]):
            sender = pick(rng, sender_cum)
            at = working_time(rng, now, 30)
            count = rng.choice((1, 1, 1, 2, 2, 3, 4, 5))
            external = sum(rng.random() < 0.35 for _ in range(count))
            domains = sorted({rng.choice(PARTNERS) for _ in range(external)})
            recipients = [
                f"user{rng.randrange(len(mailbox_ids)):05d}@{DOMAIN}" for _ in range(count - external)
            ]
            recipients += [f"contact{rng.randrange(50)}@{d}" for d in domains]
            roll = rng.random()
            verdict = (
                "phish" if roll < 0.002 else "spam" if roll < 0.01 else "bulk" if roll < 0.02 else "clean"
            )
            event_id = f"m-{n}"
            if len(sent_by[sender]) < 40 or rng.random() < 0.01:
                sent_by[sender].append((event_id, at))
            yield (
                tenant.pk,
                event_id,
                at,
                mailbox_ids[sender],
                json.dumps(recipients),
                len(recipients),
                count - external,
                len(recipients) - (count - external),
                json.dumps(domains),
                f"Re: project {rng.randrange(3000)} update",
                verdict,
                json.dumps(
                    [f"https://{rng.choice(PARTNERS)}/d/{rng.randrange(10**6)}"] if roll < 0.1 else []
                ),
                rng.randrange(2_000, 400_000),
                f"10.{sender % 250}.{rng.randrange(250)}.{rng.randrange(1, 250)}",
                f"<{n}.{rng.getrandbits(40):x}@{DOMAIN}>",
                f"{rng.getrandbits(96):024x}",
                at + timedelta(seconds=rng.randrange(1, 30)),
            )

    count = copy_rows(
        MessageEvent,
        MESSAGE_COLUMNS,
        messages(),
    )
    print(f"  {count:,} message events ({time.perf_counter() - started:.0f} s)", flush=True)

    # Restrictions, one per "User restricted" alert (placed now and then over the 90 days; most expired).
    alert_cum = skewed_weights(rng, len(mailbox_ids), 1.5)
    alert_rows, evidence_rows, restriction_rows = [], [], []
    alerts_by_mailbox: dict[int, list[int]] = defaultdict(list)
    restricted_now: set[int] = set()
    for pk in range(1, sizes["alerts"] + 1):
        kind = kinds[bisect(policy_cum, rng.random() * policy_cum[-1])]
        policy = policies[kind]
        index = pick(rng, alert_cum)
        mailbox_id = mailbox_ids[index]
        age = timedelta(days=90) * (rng.random() ** 2)  # more recent alerts than old ones
        last = now - age
        first = last - timedelta(minutes=rng.randrange(1, 240))
        recent = age < timedelta(days=7)
        roll = rng.random()
        status = (
            ("new" if roll < 0.4 else "in_progress" if roll < 0.55 else "resolved")
            if recent
            else ("new" if roll < 0.02 else "resolved")
        )
        restriction_id = None
        if kind == "restriction":
            restriction_id = len(restriction_rows) + 1
            reason = {"limit_name": "external_per_hour", "limit": 500, "count": 500 + rng.randrange(900)}
            expires = (last + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            # One open restriction per user: a second one in force for the same user was released.
            released = rng.random() < 0.3 or (expires > now and mailbox_id in restricted_now)
            released_at = min(last + timedelta(hours=3), now) if released else None
            closed_at = released_at or (expires if expires <= now else None)
            if closed_at is None:
                restricted_now.add(mailbox_id)
            restriction_rows.append(
                (
                    restriction_id, tenant.pk, mailbox_id, policies["sending_limit"].name, "policy",
                    json.dumps({**reason, "window_start": first.isoformat(), "window_end": last.isoformat()}),
                    "policy", last, expires, released_at, closed_at,
                    analysts[0].pk if released else None, "Cleaned up" if released else "",
                )
            )  # fmt: skip
        evidence = rng.choice((1, 1, 1, 2, 3, 5, 8))
        resolved = status == "resolved"
        analyst = rng.choice(analysts)
        alert_rows.append(
            (
                pk, tenant.pk, policy.pk, mailbox_id, policy.name, policy.severity, policy.category, status,
                rng.choice(CLASSIFICATIONS) if resolved else "",
                first, last, evidence, json.dumps({"count": evidence, "window_minutes": 60}),
                analyst.pk if status != "new" else None, restriction_id, first, last,
                last + timedelta(hours=rng.randrange(1, 48)) if resolved else None,
                analyst.pk if resolved else None,
            )
        )  # fmt: skip
        alerts_by_mailbox[index].append(pk)
        sent = sent_by.get(index, [])
        for e in range(evidence):
            if kind in ("sending_limit", "sending_pattern") and sent:
                event_id, at = sent[e % len(sent)]
                evidence_rows.append((pk, "message", event_id, at))
            else:
                evidence_rows.append(
                    (pk, "sign_in" if kind == "sign_in" else "inbox_rule", f"x-{pk}-{e}", last)
                )
    copy_rows(
        Restriction,
        (
            "id",
            "tenant_id",
            "mailbox_id",
            "policy_name",
            "source",
            "reason",
            "placed_by_label",
            "placed_at",
            "expires_at",
            "released_at",
            "closed_at",
            "released_by_id",
            "release_reason",
        ),  # fmt: skip
        restriction_rows,
    )
    copy_rows(
        Alert,
        (
            "id",
            "tenant_id",
            "policy_id",
            "mailbox_id",
            "title",
            "severity",
            "category",
            "status",
            "classification",
            "first_activity_at",
            "last_activity_at",
            "evidence_count",
            "details",
            "assigned_to_id",
            "restriction_id",
            "created_at",
            "updated_at",
            "resolved_at",
            "resolved_by_id",
        ),  # fmt: skip
        alert_rows,
    )
    evidence_count = copy_rows(
        AlertEvidence,
        ("alert_id", "kind", "event_id", "at"),
        dict.fromkeys(evidence_rows),  # (alert, kind, event) is unique
    )
    for model in (Restriction, Alert):
        reset_sequence(model)
    print(
        f"  {len(alert_rows):,} alerts, {evidence_count:,} evidence rows, "
        f"{len(restriction_rows):,} restrictions ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    # Investigations of the most-alerted users first (the biggest pages), then of random alerted users.
    investigated = sorted(alerts_by_mailbox, key=lambda i: -len(alerts_by_mailbox[i]))
    statuses = ["remediated"] * 5 + ["no_threats"] * 3 + ["pending_action"] * 2 + ["partially_remediated"]
    inv_rows, link_rows, run_rows, finding_rows, action_rows, audit_rows = [], [], [], [], [], []
    analyzers = ("correlated_alerts", "sending_anomaly", "sent_malware", "mail_clusters", "forwarding",
                 "inbox_rules", "delegations", "sign_ins", "verdict")  # fmt: skip
    action_types = ("turn_off_forwarding", "remove_inbox_rule", "force_password_reset", "revoke_sessions")
    finding_pk = action_pk = 0
    for pk, index in enumerate(investigated[: sizes["investigations"]], start=1):
        alerts = alerts_by_mailbox[index]
        status = "pending_action" if pk == 1 else rng.choice(statuses)
        created = now - timedelta(days=rng.randrange(30), minutes=rng.randrange(600))
        inv_rows.append(
            (pk, tenant.pk, mailbox_ids[index], status, alerts[-1], "compromised" if status != "no_threats"
             else "clean", rng.randrange(20, 100), json.dumps([{"points": 15, "reason": "High alert"}]), 1,
             created, created + timedelta(seconds=1), created + timedelta(seconds=3), created)
        )  # fmt: skip
        link_rows += [(pk, alert_id) for alert_id in alerts[-50:]]
        run_rows += [(pk, 1, name, created, rng.randrange(5, 400), "ok", 1) for name in analyzers]
        for f in range(rng.randrange(3, 9)):
            finding_pk += 1
            finding_rows.append(
                (finding_pk, pk, analyzers[f], "inbox_rule" if f % 2 else "sign_in", f"entity-{pk}-{f}",
                 f"Entity {f} of investigation {pk}", "malicious" if f < 2 else "suspicious",
                 json.dumps(["Forwards outside the tenant"]), created)
            )  # fmt: skip
            if f < 4 and status != "no_threats":
                action_pk += 1
                done = status == "remediated" or (status == "partially_remediated" and f == 0)
                action_rows.append(
                    (action_pk, tenant.pk, pk, finding_pk, action_types[f], json.dumps({"mailbox": index}),
                     f"{action_types[f]} on user{index:05d}@{DOMAIN}", f"{action_types[f]}:{index}",
                     "completed" if done else "pending", created, created + timedelta(days=7),
                     analysts[1].pk if done else None, created + timedelta(hours=1) if done else None,
                     created + timedelta(hours=1) if done else None)
                )  # fmt: skip
                audit_rows.append(
                    (created, analysts[1].pk, "analyst0", "investigations.action.approved", tenant.pk,
                     "investigations.remediationaction", str(action_pk), action_types[f])
                )  # fmt: skip
        audit_rows.append(
            (created, None, "system", "investigations.investigation.started", tenant.pk,
             "investigations.investigation", str(pk), f"Investigation #{pk}")
        )  # fmt: skip
    copy_rows(
        Investigation,
        (
            "id",
            "tenant_id",
            "mailbox_id",
            "status",
            "trigger_alert_id",
            "verdict",
            "risk_score",
            "risk_reasons",
            "run_count",
            "created_at",
            "started_at",
            "ended_at",
            "updated_at",
        ),  # fmt: skip
        inv_rows,
    )
    copy_rows(Investigation.alerts.through, ("investigation_id", "alert_id"), link_rows)
    copy_rows(
        AnalyzerRun,
        ("investigation_id", "run_number", "analyzer", "started_at", "duration_ms", "outcome", "findings"),
        run_rows,
    )
    copy_rows(
        Finding,
        (
            "id",
            "investigation_id",
            "analyzer",
            "entity_type",
            "entity_key",
            "entity_label",
            "verdict",
            "reasons",
            "created_at",
        ),  # fmt: skip
        finding_rows,
    )
    copy_rows(
        RemediationAction,
        ("id", "tenant_id", "investigation_id", "finding_id", "action_type", "target", "target_label",
         "target_key", "status", "proposed_at", "expires_at", "decided_by_id", "decided_at", "completed_at"),
        action_rows,
    )  # fmt: skip
    copy_rows(
        AuditEvent,
        ("at", "actor_id", "actor_label", "action", "tenant_id", "target_type", "target_id", "target_repr"),
        audit_rows,
    )
    for model in (Investigation, Finding, RemediationAction):
        reset_sequence(model)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"  {len(inv_rows):,} investigations, {len(finding_rows):,} findings, {len(action_rows):,} actions; "
        f"seeded in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    busiest = f"user{investigated[0]:05d}@{DOMAIN}"
    return {"admin": admin, "investigation": 1, "busiest_user": busiest}


def measure(client, path: str, requests: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUPS):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    return timings, len(queries)


def correlate_seeded_investigation(investigation_id: int) -> int | None:
    """Correlate the measured investigation's alerts and itself into their incident (the seed writes no
    incidents), through the incidents service: the incident page is measured on a real one."""
    from incidents.models import Incident
    from incidents.services import correlate_alert, correlate_investigation
    from investigations.models import Investigation

    links = Investigation.alerts.through.objects.filter(investigation_id=investigation_id)
    for alert_id in links.values_list("alert_id", flat=True).order_by("alert_id"):
        correlate_alert(alert_id)
    incident = correlate_investigation(investigation_id) or Incident.objects.order_by("pk").first()
    return incident.pk if incident else None


def main() -> None:
    from urllib.parse import urlencode

    sizes = {
        "mailboxes": env_int("BENCH_MAILBOXES", 5_000),
        "messages": env_int("BENCH_MESSAGES", 1_000_000),
        "alerts": env_int("BENCH_ALERTS", 100_000),
        "investigations": env_int("BENCH_INVESTIGATIONS", 2_000),
    }
    requests = env_int("BENCH_REQUESTS", 50)
    now = datetime.now(UTC).replace(microsecond=0)
    with bench_database(DATABASE):
        from django.test import Client

        print(f"Seeding {', '.join(f'{v:,} {k}' for k, v in sizes.items())} (COPY)...", flush=True)
        seeded = seed(random.Random(5), now, sizes)
        incident = correlate_seeded_investigation(seeded["investigation"])
        client = Client()
        client.force_login(seeded["admin"])
        pages = [
            ("dashboard", "/"),
            ("alert list (default)", "/alerts/"),
            ("alert list (open, high, last 7 days)", "/alerts/?" + urlencode(FILTERED)),
            ("alert list (one user)", "/alerts/?" + urlencode({"user": seeded["busiest_user"]})),
            ("investigation detail (most alerts)", f"/investigations/{seeded['investigation']}/"),
            ("investigation graph tab", f"/investigations/{seeded['investigation']}/graph/"),
            ("investigation clusters tab", f"/investigations/{seeded['investigation']}/clusters/"),
            ("investigation history tab", f"/investigations/{seeded['investigation']}/history/"),
            ("action center (pending)", "/action-center/"),
            ("incident list (open)", "/incidents/"),
            *([("incident detail (that investigation's)", f"/incidents/{incident}/")] if incident else []),
        ]  # fmt: skip
        print(f"\n{requests} requests per page after {WARMUPS} warm-ups (Django test client, server time):")
        print(f"  {'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
        for label, path in pages:
            timings, queries = measure(client, path, requests)
            print(
                f"  {label:<40} {percentile(timings, 50):8.1f} {percentile(timings, 95):8.1f} "
                f"{max(timings):8.1f} {queries:8d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
