"""Every list page costs the same number of queries for 10 rows as for 1,000: no query per row (the pages
show 50 or 100 rows, so a per-row query would show up as 10 against 50 or 100 more)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertEvidence
from alerts.services import ensure_default_policies
from core.models import AuditEvent
from incidents.models import Incident, IncidentAlert, IncidentInvestigation, IncidentRestriction
from investigations.models import Finding, Investigation, RemediationAction
from mailboxes.models import Mailbox
from restricted_users.models import Restriction

pytestmark = pytest.mark.django_db

LIST_PAGES = (
    "/",
    "/incidents/",
    "/incidents/?status=",
    "/alerts/",
    "/restricted-users/",
    "/investigations/",
    "/action-center/",
    "/action-center/?status=",
    "/mailboxes/",
    "/audit/",
)


def build_rows(tenant, count: int, actor) -> None:
    """``count`` of each listed thing, every one on its own mailbox, with the relations the rows show."""
    now = timezone.now()
    policies = list(ensure_default_policies(tenant).values())
    offset = Mailbox.objects.count()
    mailboxes = Mailbox.objects.bulk_create(
        Mailbox(tenant=tenant, address=f"user{offset + n}@contoso.example", display_name=f"User {n}")
        for n in range(count)
    )
    restrictions = Restriction.objects.bulk_create(
        Restriction(
            tenant=tenant,
            mailbox=mailbox,
            policy_name="Email sending limit exceeded",
            source="policy",
            reason={"limit_name": "external_per_hour", "limit": 500, "count": 600 + n},
            placed_by_label="policy",
            placed_at=now - timedelta(minutes=n),
            expires_at=now + timedelta(hours=6),
        )
        for n, mailbox in enumerate(mailboxes)
    )
    alerts = Alert.objects.bulk_create(
        Alert(
            tenant=tenant,
            policy=policies[n % len(policies)],
            mailbox=mailbox,
            title=f"Alert {n}",
            severity=policies[n % len(policies)].severity,
            category=policies[n % len(policies)].category,
            first_activity_at=now - timedelta(minutes=n + 5),
            last_activity_at=now - timedelta(minutes=n),
            evidence_count=1,
            assigned_to=actor if n % 2 else None,
            restriction=restrictions[n],
        )
        for n, mailbox in enumerate(mailboxes)
    )
    AlertEvidence.objects.bulk_create(
        AlertEvidence(alert=alert, kind="message", event_id=f"ev-{alert.pk}", at=now) for alert in alerts
    )
    investigations = Investigation.objects.bulk_create(
        Investigation(
            tenant=tenant,
            mailbox=mailbox,
            status=Investigation.Status.PENDING_ACTION,
            trigger_alert=alerts[n],
            verdict=Investigation.Verdict.COMPROMISED,
            risk_score=70,
            started_at=now - timedelta(minutes=n + 2),
            ended_at=now - timedelta(minutes=n),
        )
        for n, mailbox in enumerate(mailboxes)
    )
    Investigation.alerts.through.objects.bulk_create(
        Investigation.alerts.through(investigation=investigation, alert=alerts[n])
        for n, investigation in enumerate(investigations)
    )
    findings = Finding.objects.bulk_create(
        Finding(
            investigation=investigation,
            analyzer="forwarding",
            entity_type=Finding.EntityType.FORWARDING,
            entity_key=f"forwarding:{investigation.pk}",
            entity_label="attacker@evil.example",
            verdict=Finding.Verdict.MALICIOUS,
            reasons=["External forwarding"],
        )
        for investigation in investigations
    )
    RemediationAction.objects.bulk_create(
        RemediationAction(
            tenant=tenant,
            investigation=investigation,
            finding=findings[n],
            action_type=RemediationAction.Type.TURN_OFF_FORWARDING,
            target={"mailbox": investigation.mailbox_id},
            target_label="Forwarding to attacker@evil.example",
            target_key=f"forwarding:{investigation.mailbox_id}",
            status=RemediationAction.Status.PENDING if n % 2 else RemediationAction.Status.COMPLETED,
            decided_by=None if n % 2 else actor,
            decided_at=None if n % 2 else now,
            expires_at=now + timedelta(days=7),
        )
        for n, investigation in enumerate(investigations)
    )
    incidents = Incident.objects.bulk_create(
        Incident(
            tenant=tenant,
            mailbox=mailbox,
            title=f"Incident {n} involving {mailbox.address}",
            severity=alerts[n].severity,
            status=Incident.Status.ACTIVE if n % 3 else Incident.Status.RESOLVED,
            assigned_to=actor if n % 2 else None,
            first_activity_at=alerts[n].first_activity_at,
            last_activity_at=alerts[n].last_activity_at,
        )
        for n, mailbox in enumerate(mailboxes)
    )
    IncidentAlert.objects.bulk_create(
        IncidentAlert(incident=i, alert=alerts[n]) for n, i in enumerate(incidents)
    )
    IncidentRestriction.objects.bulk_create(
        IncidentRestriction(incident=i, restriction=restrictions[n]) for n, i in enumerate(incidents)
    )
    IncidentInvestigation.objects.bulk_create(
        IncidentInvestigation(incident=i, investigation=investigations[n]) for n, i in enumerate(incidents)
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=actor,
            actor_label=actor.username,
            action="alerts.alert.status_changed",
            tenant=tenant,
            target_type="alerts.alert",
            target_id=str(alert.pk),
            target_repr=alert.title,
        )
        for alert in alerts
    )


def query_count(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(queries)


def counts(client) -> dict[str, int]:
    return {path: query_count(client, path) for path in LIST_PAGES}


def test_every_list_page_costs_the_same_queries_for_10_and_1000_rows(
    tenant, administrator, administrator_client
):
    build_rows(tenant, 10, administrator)
    query_count(administrator_client, "/")  # the first request of a session warms its caches
    with_10 = counts(administrator_client)
    build_rows(tenant, 990, administrator)
    with_1000 = counts(administrator_client)
    assert with_1000 == with_10
    assert Alert.objects.count() == RemediationAction.objects.count() == 1000


def test_the_lists_show_the_rows_built(tenant, administrator, administrator_client):
    """The pages measured above really list those rows (a count over empty pages would prove nothing)."""
    build_rows(tenant, 10, administrator)
    for path, text in (
        ("/incidents/", "Incident 8 involving"),
        ("/incidents/?status=", "Incident 9 involving"),
        ("/", "Incident 8 involving"),
        ("/alerts/", "Alert 9"),
        ("/restricted-users/", "user9@contoso.example"),
        ("/investigations/", "user9@contoso.example"),
        ("/action-center/", "Forwarding to attacker@evil.example"),
        ("/mailboxes/", "user9@contoso.example"),
        ("/audit/", "Alert 9"),
    ):
        assert text in administrator_client.get(path).content.decode(), path
