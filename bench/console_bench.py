"""Console page benchmark: server time of the console's pages on a large tenant (issue 17: 10M messages, 1M
alerts, every page p95 ≤ 150 ms with a flat query count).

1. Seed, straight into the tables (the ingest service is far too slow for this size), and print the seed time:
   ``BENCH_MAILBOXES`` (50,000) mailboxes; ``BENCH_MESSAGES`` (10,000,000) message events over 30 days,
   generated inside PostgreSQL (``INSERT … SELECT`` over ``generate_series``, secondary indexes built once
   afterwards): working-hours shaped, from a skewed set of senders (a few send a lot), 1-5 recipients, ~1%
   spam / phish; ``BENCH_ALERTS`` (1,000,000) alerts over 90 days by ``COPY`` (mostly informational / low,
   nearly all resolved except in the last week, skewed to a few users; restrictions behind the "User
   restricted" alerts), their evidence generated in PostgreSQL (a sending alert names its user's real
   messages), the dashboard tallies recounted once; ``BENCH_INVESTIGATIONS`` (20,000) investigations with
   their alerts, analyzer log, findings, actions, audit trail and incident, and mail clusters for the
   measured one.
2. With the Django test client (an administrator, ``force_login``), ``BENCH_REQUESTS`` (50) requests after 3
   warm-ups to each page: the dashboard; the alert queue (default, filtered, one user, searched, three sorts);
   the incident queue (default, sorted by alerts) and an incident; the investigation with the most alerts (its
   page, graph, clusters, largest cluster, history); the action center; the restricted-users queue. Prints
   p50 / p95 / max server time in ms, SQL queries per request, whether p95 ≤ 150 ms, and the load average
   (the machine may be shared).

Uses its own database ``soc_console_bench_console`` on ``DATABASE_URL``'s server (dropped afterwards; see
``bench.common.bench_database`` for ``BENCH_KEEP`` / ``BENCH_REUSE`` while tuning).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from bisect import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.setdefault("STATIC_MANIFEST", "false")  # pages render without collectstatic

from bench.common import bench_database, percentile

if TYPE_CHECKING:
    from django.db.models import Model

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


@contextmanager
def indexes_dropped(model: type[Model]) -> Iterator[None]:
    """Drop ``model``'s secondary indexes and unique constraints for the block, then build them again from
    their own definitions: one sort per index instead of a B-tree insert per row."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            # A partitioned table's index is defined ``ON ONLY`` the parent: built here for every partition.
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))


@contextmanager
def tally_triggers_off() -> Iterator[None]:
    """Load alerts without the per-row tally triggers (``USER``: constraint triggers stay), then recount the
    tallies once (what the triggers would have left, in grouped queries)."""
    from django.db import connection

    from alerts.tallies import rebuild_tallies

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE alerts_alert DISABLE TRIGGER USER")
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE alerts_alert ENABLE TRIGGER USER")
    rebuild_tallies()


# Working-hours weights as an array PostgreSQL indexes by a uniform draw: hour h appears WORK_HOURS[h] times.
HOUR_DRAW = [hour for hour, weight in enumerate(WORK_HOURS) for _ in range(weight)]
MESSAGES_SQL = """
INSERT INTO mailflow_messageevent (tenant_id, event_id, time, sender_id, recipients, recipient_count,
    internal_count, external_count, external_domains, subject, verdict, urls, size, client_ip,
    internet_message_id, body_hash, received_at)
SELECT %(tenant)s, 'm-' || g, at, (%(mailboxes)s::bigint[])[1 + sender], to_jsonb(
        (ARRAY[internal1, internal2, internal3, internal4, internal5])[1:total - external]
        || (ARRAY['contact' || (g %% 50) || '@' || domain1, 'contact' || (g %% 47) || '@' || domain2,
                  'contact' || (g %% 43) || '@' || domain3])[1:external]),
    total, total - external, external, to_jsonb((ARRAY[domain1, domain2, domain3])[1:external]),
    'Re: project ' || floor(r_subject * 3000) || ' update',
    CASE WHEN r_verdict < 0.002 THEN 'phish' WHEN r_verdict < 0.01 THEN 'spam'
         WHEN r_verdict < 0.02 THEN 'bulk' ELSE 'clean' END,
    CASE WHEN r_verdict < 0.1 THEN jsonb_build_array('https://' || domain1 || '/d/' || g) ELSE '[]' END,
    2000 + floor(r_size * 398000),
    ('10.' || (sender %% 250) || '.' || (g %% 250) || '.' || (1 + g %% 249))::inet,
    '<' || g || '.' || sender || '@' || %(domain)s || '>', substr(md5(g::text), 1, 24),
    at + make_interval(secs => 1 + g %% 29)
FROM (
    SELECT g, sender, total, least(external, total) AS external, r_subject, r_verdict, r_size,
        CASE WHEN at > %(now)s THEN at - interval '1 day' ELSE at END AS at,
        'partner' || (partner %% 300) || '.example.net' AS domain1,
        'partner' || ((partner + 37) %% 300) || '.example.net' AS domain2,
        'partner' || ((partner + 74) %% 300) || '.example.net' AS domain3,
        'user' || lpad(((peer) %% %(count)s)::text, 5, '0') || '@' || %(domain)s AS internal1,
        'user' || lpad(((peer + 7919) %% %(count)s)::text, 5, '0') || '@' || %(domain)s AS internal2,
        'user' || lpad(((peer + 15838) %% %(count)s)::text, 5, '0') || '@' || %(domain)s AS internal3,
        'user' || lpad(((peer + 23757) %% %(count)s)::text, 5, '0') || '@' || %(domain)s AS internal4,
        'user' || lpad(((peer + 31676) %% %(count)s)::text, 5, '0') || '@' || %(domain)s AS internal5
    FROM (
        SELECT g,
            floor(%(count)s * power(random(), 1.6))::int AS sender,
            date_trunc('day', %(now)s::timestamptz) - floor(random() * 30) * interval '1 day'
                + (%(hours)s::int[])[1 + floor(random() * %(hour_draws)s)::int] * interval '1 hour'
                + floor(random() * 3600) * interval '1 second' AS at,
            (ARRAY[1, 1, 1, 2, 2, 3, 4, 5])[1 + floor(random() * 8)::int] AS total,
            floor(random() * 2.2)::int AS external,
            floor(random() * 300)::int AS partner,
            floor(random() * %(count)s)::int AS peer,
            random() AS r_subject, random() AS r_verdict, random() AS r_size
        FROM generate_series(1, %(messages)s) AS g
    ) AS draws
) AS rows
"""


def insert_messages(tenant_id: int, mailbox_ids: list[int], messages: int, now: datetime) -> int:
    """``messages`` message events over the 30 days before ``now``, generated by PostgreSQL: working-hours
    shaped, from a skewed set of senders (a few send a lot), 1-5 recipients (up to 3 external), ~1% spam /
    phish. Event ids are ``m-<n>``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.5)")
        cursor.execute(
            MESSAGES_SQL,
            {
                "tenant": tenant_id,
                "mailboxes": mailbox_ids,
                "count": len(mailbox_ids),
                "messages": messages,
                "now": now,
                "domain": DOMAIN,
                "hours": HOUR_DRAW,
                "hour_draws": len(HOUR_DRAW),
            },
        )
        return cursor.rowcount


EVIDENCE_SQL = """
INSERT INTO alerts_alertevidence (alert_id, kind, event_id, at)
SELECT a.id, 'message', m.event_id, m.time
FROM alerts_alert a JOIN alerts_alertpolicy p ON p.id = a.policy_id
CROSS JOIN LATERAL (
    SELECT event_id, time FROM mailflow_messageevent
    WHERE tenant_id = %(tenant)s AND sender_id = a.mailbox_id AND time <= a.last_activity_at
    ORDER BY time DESC LIMIT a.evidence_count
) m
WHERE p.kind IN ('sending_limit', 'sending_pattern')
UNION ALL
SELECT a.id, CASE p.kind WHEN 'sign_in' THEN 'sign_in' ELSE 'inbox_rule' END, 'x-' || a.id || '-' || e,
    a.last_activity_at
FROM alerts_alert a JOIN alerts_alertpolicy p ON p.id = a.policy_id
CROSS JOIN generate_series(0, a.evidence_count - 1) e
WHERE p.kind NOT IN ('sending_limit', 'sending_pattern')
"""


def insert_evidence(tenant_id: int) -> int:
    """Every alert's evidence: a sending alert names its user's latest messages before its last activity (real
    message events, so the alert page joins them); the others name sign-ins or rule changes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(EVIDENCE_SQL, {"tenant": tenant_id})
        return cursor.rowcount


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
    from core.retention import ensure_partitions
    from core.roles import ADMINISTRATOR, OPERATOR, sync_roles
    from incidents.models import Incident
    from investigations.models import AnalyzerRun, Finding, Investigation, RemediationAction
    from mailboxes.models import AcceptedDomain, Mailbox
    from mailflow.models import MessageEvent
    from restricted_users.models import Restriction

    started = time.perf_counter()
    timings: dict[str, float] = {}
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

    # Messages, generated inside PostgreSQL (INSERT … SELECT over generate_series: no row crosses the wire),
    # with the table's secondary indexes built once afterwards rather than maintained row by row.
    phase = time.perf_counter()
    ensure_partitions(now)  # PostgreSQL's partitioned telemetry: the 30 days' partitions, as beat keeps them
    with indexes_dropped(MessageEvent):
        count = insert_messages(tenant.pk, mailbox_ids, sizes["messages"], now)
        inserted = time.perf_counter() - phase
    timings["messages"] = time.perf_counter() - phase
    print(
        f"  {count:,} message events: inserted in {inserted:.0f} s, indexed in "
        f"{timings['messages'] - inserted:.0f} s",
        flush=True,
    )

    # Restrictions, one per "User restricted" alert (placed now and then over the 90 days; most expired).
    alert_cum = skewed_weights(rng, len(mailbox_ids), 1.5)
    phase = time.perf_counter()
    alert_rows, restriction_rows = [], []
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
    with indexes_dropped(Alert), tally_triggers_off():
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
    timings["alerts"] = time.perf_counter() - phase
    phase = time.perf_counter()
    with indexes_dropped(AlertEvidence):
        evidence_count = insert_evidence(tenant.pk)
    timings["evidence"] = time.perf_counter() - phase
    for model in (Restriction, Alert):
        reset_sequence(model)
    print(
        f"  {len(alert_rows):,} alerts and {len(restriction_rows):,} restrictions "
        f"in {timings['alerts']:.0f} s, "
        f"{evidence_count:,} evidence rows in {timings['evidence']:.0f} s",
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
    incidents = seed_incidents(tenant.pk, inv_rows, link_rows, alert_rows)
    for model in (Investigation, Finding, RemediationAction, Incident):
        reset_sequence(model)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum leaves a settled database: visibility maps included
    print(
        f"  {len(inv_rows):,} investigations, {len(finding_rows):,} findings, {len(action_rows):,} actions, "
        f"{incidents:,} incidents; seeded in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    busiest = f"user{investigated[0]:05d}@{DOMAIN}"
    return {"admin": admin, "investigation": 1, "busiest_user": busiest}


INCIDENT_STATUS = {"pending_action": "active", "partially_remediated": "in_progress"}  # else resolved
SEVERITY_ORDER = ("informational", "low", "medium", "high")


def seed_incidents(
    tenant_id: int, inv_rows: list[tuple], link_rows: list[tuple], alert_rows: list[tuple]
) -> int:
    """One incident per seeded investigation but the first (the measured one, which the incidents service
    correlates itself), grouping the investigation and its alerts: open while the investigation waits for
    decisions. Returns the number of incidents."""
    from incidents.models import Incident, IncidentAlert, IncidentInvestigation

    alerts_of: dict[int, list[int]] = defaultdict(list)
    for investigation_id, alert_id in link_rows:
        alerts_of[investigation_id].append(alert_id)
    rows, alert_links, investigation_links = [], [], []
    for inv in inv_rows[1:]:
        pk, mailbox_id, status, created = inv[0], inv[2], inv[3], inv[9]
        linked = [alert_rows[alert_id - 1] for alert_id in alerts_of[pk]]
        state = INCIDENT_STATUS.get(status, "resolved")
        rows.append(
            (pk, tenant_id, mailbox_id, f"Compromised user (investigation #{pk})",
             max((a[5] for a in linked), key=SEVERITY_ORDER.index), state,
             min(a[9] for a in linked), max(a[10] for a in linked), created,
             created + timedelta(days=2) if state == "resolved" else None)
        )  # fmt: skip
        alert_links += [(pk, alert_id, created) for alert_id in alerts_of[pk]]
        investigation_links.append((pk, pk, created))
    copy_rows(
        Incident,
        ("id", "tenant_id", "mailbox_id", "title", "severity", "status", "first_activity_at",
         "last_activity_at", "created_at", "resolved_at"),
        rows,
    )  # fmt: skip
    copy_rows(IncidentAlert, ("incident_id", "alert_id", "linked_at"), alert_links)
    copy_rows(IncidentInvestigation, ("incident_id", "investigation_id", "linked_at"), investigation_links)
    return len(rows)


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


def seed_clusters(investigation_id: int) -> int | None:
    """Mail clusters for the measured investigation, from its user's seeded messages (twenty subject
    families), as the mail-clusters analyzer would leave them. Returns the largest cluster's id."""
    from django.db import connection

    from investigations.models import MailCluster

    with connection.cursor() as cursor:
        cursor.execute(CLUSTERS_SQL, {"investigation": investigation_id})
    largest = MailCluster.objects.filter(investigation_id=investigation_id).order_by("-message_count").first()
    return largest.pk if largest else None


CLUSTERS_SQL = """
INSERT INTO investigations_mailcluster (investigation_id, fingerprint, basis, label, verdict, message_count,
    internal_recipients, external_recipients, verdict_counts, first_at, last_at, event_ids, reasons,
    breach_recipients)
SELECT i.id, md5(family::text), 'subject', 'Re: project *' || family || ' update', 'suspicious', count(*),
    sum(m.internal_count), sum(m.external_count), '{}', min(m.time), max(m.time),
    to_jsonb((array_agg(m.event_id ORDER BY m.time))[1:1000]), '[]', 0
FROM investigations_investigation i
JOIN mailflow_messageevent m ON m.tenant_id = i.tenant_id AND m.sender_id = i.mailbox_id
CROSS JOIN LATERAL (SELECT substring(m.subject FROM 'project ([0-9]+)')::int %% 20 AS family) f
WHERE i.id = %(investigation)s
GROUP BY i.id, family
"""
TARGET_MS = 150.0


def seeded_before() -> tuple[dict, int | None, int | None]:
    """What :func:`main` measures, read back from a database kept by an earlier run (``BENCH_REUSE=1``)."""
    from django.contrib.auth import get_user_model

    from incidents.models import IncidentInvestigation
    from investigations.models import Investigation, MailCluster

    investigation = Investigation.objects.select_related("mailbox").get(pk=1)
    link = IncidentInvestigation.objects.filter(investigation=investigation).first()
    cluster = MailCluster.objects.filter(investigation=investigation).order_by("-message_count").first()
    seeded = {
        "admin": get_user_model().objects.get(username="bench.admin"),
        "investigation": investigation.pk,
        "busiest_user": investigation.mailbox.address,
    }
    return seeded, link.incident_id if link else None, cluster.pk if cluster else None


def main() -> None:
    from urllib.parse import urlencode

    # Issue 17's 10×: 10M messages and 1M alerts; mailboxes, investigations (and their incidents) alike.
    sizes = {
        "mailboxes": env_int("BENCH_MAILBOXES", 50_000),
        "messages": env_int("BENCH_MESSAGES", 10_000_000),
        "alerts": env_int("BENCH_ALERTS", 1_000_000),
        "investigations": env_int("BENCH_INVESTIGATIONS", 20_000),
    }
    requests = env_int("BENCH_REQUESTS", 50)
    now = datetime.now(UTC).replace(microsecond=0)
    with bench_database(DATABASE):
        from django.test import Client

        if os.environ.get("BENCH_REUSE") == "1":
            seeded, incident, cluster = seeded_before()
        else:
            print(f"Seeding {', '.join(f'{v:,} {k}' for k, v in sizes.items())}...", flush=True)
            started = time.perf_counter()
            seeded = seed(random.Random(5), now, sizes)
            incident = correlate_seeded_investigation(seeded["investigation"])
            cluster = seed_clusters(seeded["investigation"])
            print(f"Seed time: {time.perf_counter() - started:.0f} s", flush=True)
        investigation = seeded["investigation"]
        client = Client()
        client.force_login(seeded["admin"])
        busiest = seeded["busiest_user"]
        pages = [
            ("dashboard", "/"),
            ("alert list (default)", "/alerts/"),
            ("alert list (open, high, last 7 days)", "/alerts/?" + urlencode(FILTERED)),
            ("alert list (one user)", "/alerts/?" + urlencode({"user": busiest})),
            ("alert list (searched 'user0001')", "/alerts/?" + urlencode({"user": "user0001"})),
            ("alert list (by severity)", "/alerts/?ordering=-severity"),
            ("alert list (by user)", "/alerts/?ordering=user"),
            ("alert list (open, most events)", "/alerts/?status=open&ordering=-count"),
            ("incident list (default)", "/incidents/"),
            ("incident list (by alerts)", "/incidents/?ordering=-alerts"),
            *([("incident detail (that investigation's)", f"/incidents/{incident}/")] if incident else []),
            ("investigation detail (most alerts)", f"/investigations/{investigation}/"),
            ("investigation graph tab", f"/investigations/{investigation}/graph/"),
            ("investigation clusters tab", f"/investigations/{investigation}/clusters/"),
            *([("investigation cluster (largest)", f"/investigations/{investigation}/clusters/{cluster}/")]
              if cluster else []),
            ("investigation history tab", f"/investigations/{investigation}/history/"),
            ("action center (pending)", "/action-center/"),
            ("restricted users (in force)", "/restricted-users/"),
            ("restricted users (all, newest)", "/restricted-users/?state=&ordering=-placed"),
        ]  # fmt: skip
        load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"\n{requests} requests per page after {WARMUPS} warm-ups (Django test client, server time); "
            f"load average {load} (1 / 5 / 15 min):"
        )
        print(
            f"  {'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}"
            f"  p95 ≤ {TARGET_MS:.0f} ms"
        )
        over = []
        for label, path in pages:
            timings, queries = measure(client, path, requests)
            p95 = percentile(timings, 95)
            if p95 > TARGET_MS:
                over.append(label)
            print(
                f"  {label:<40} {percentile(timings, 50):8.1f} {p95:8.1f} "
                f"{max(timings):8.1f} {queries:8d}  {'yes' if p95 <= TARGET_MS else 'NO'}",
                flush=True,
            )
        load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"Load average after: {load}. Pages over {TARGET_MS:.0f} ms at p95: {', '.join(over) or 'none'}."
        )


if __name__ == "__main__":
    main()
