"""Builders for the action-side tests: a mailbox with directory state set through the real directory
services, and an investigation with findings and proposed actions created directly through the ORM (so these
tests do not depend on the playbook)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.utils import timezone

from alerts.models import Alert
from investigations.models import ACTION_EXPIRY, Finding, Investigation, MailCluster, RemediationAction
from mailboxes import services as directory
from mailboxes.models import Mailbox
from mailflow.models import MessageEvent
from tests import builders

HOME = "contoso.example"
OUTSIDE = "fabrikam.example"
ALICE = f"alice@{HOME}"
EVIL = "drop@evil.example"
Type = RemediationAction.Type
Status = RemediationAction.Status


#: A mailbox whose domain is accepted (the directory services see its address as internal).
make_mailbox = partial(builders.make_mailbox, accept_domain=True)
#: An open alert that starts no investigation.
make_alert = builders.make_quiet_alert


def make_investigation(
    mailbox: Mailbox,
    *,
    status: str = Investigation.Status.PENDING_ACTION,
    verdict: str = Investigation.Verdict.COMPROMISED,
    alert: Alert | None = None,
    created_at: datetime | None = None,
) -> Investigation:
    """A finished investigation with one malicious finding (so it has a threat)."""
    created_at = created_at or timezone.now() - timedelta(minutes=10)
    investigation = Investigation.objects.create(
        tenant=mailbox.tenant,
        mailbox=mailbox,
        status=status,
        verdict=verdict,
        risk_score=80,
        risk_reasons=[
            {"points": 80, "reason": "External forwarding to a new domain", "analyzer": "forwarding"}
        ],
        trigger_alert=alert,
        created_at=created_at,
        started_at=created_at,
        ended_at=None
        if status in (Investigation.Status.QUEUED, Investigation.Status.RUNNING)
        else created_at + timedelta(seconds=4),
        run_count=1,
    )
    if alert is not None:
        investigation.alerts.add(alert)
    Finding.objects.create(
        investigation=investigation,
        analyzer="forwarding",
        entity_type=Finding.EntityType.FORWARDING,
        entity_key=f"forwarding:{mailbox.pk}",
        entity_label=f"{mailbox.address} → {EVIL}",
        verdict=Finding.Verdict.MALICIOUS,
        reasons=["Forwards every message to an external address first seen today"],
    )
    return investigation


def make_action(
    investigation: Investigation,
    action_type: str,
    *,
    target: dict | None = None,
    status: str = Status.PENDING,
    label: str = "",
    proposed_at: datetime | None = None,
    **fields,
) -> RemediationAction:
    proposed_at = proposed_at or timezone.now() - timedelta(minutes=5)
    target = {"mailbox_id": investigation.mailbox_id, **(target or {})}
    return RemediationAction.objects.create(
        tenant=investigation.tenant,
        investigation=investigation,
        finding=investigation.findings.first(),
        action_type=action_type,
        target=target,
        target_label=label or f"{action_type} on {investigation.mailbox.address}",
        target_key=f"{action_type}:{sorted(target.items())}",
        status=status,
        proposed_at=proposed_at,
        expires_at=proposed_at + ACTION_EXPIRY,
        **fields,
    )


def forward(mailbox: Mailbox, to: str = EVIL, *, keep_copy: bool = True) -> None:
    directory.set_forwarding(
        mailbox,
        forward_to=to,
        keep_copy=keep_copy,
        actor=None,
        at=timezone.now() - timedelta(hours=2),
        source="api",
    )


def forwarding_investigation(tenant, *, alerted: bool = False) -> Investigation:
    """A fresh mailbox forwarding everything to EVIL, and a finished investigation of it (started by an open
    alert when ``alerted``)."""
    mailbox = make_mailbox(tenant)
    forward(mailbox)
    return make_investigation(mailbox, alert=make_alert(tenant, mailbox) if alerted else None)


def add_rule(mailbox: Mailbox, rule_id: str = "rule-1", *, name: str = "Move invoices") -> None:
    directory.apply_inbox_rule_change(
        mailbox,
        rule_id=rule_id,
        operation="created",
        actor=None,
        at=timezone.now() - timedelta(hours=2),
        name=name,
        conditions={"subject_contains": ["invoice"]},
        actions={"move_to_folder": "RSS Feeds", "mark_as_read": True},
        source="api",
    )


def add_delegate(mailbox: Mailbox, delegate: str = f"mallory@{HOME}", access: str = "full_access") -> None:
    directory.apply_delegation_change(
        mailbox,
        delegate=delegate,
        access=access,
        operation="added",
        actor=None,
        at=timezone.now() - timedelta(hours=2),
        source="api",
    )


def sent_messages(mailbox: Mailbox, investigation: Investigation, *, count: int = 2) -> MailCluster:
    """``count`` phishing messages from the mailbox, each to two colleagues and one outsider, as a cluster."""
    now = timezone.now()
    ids = []
    for n in range(count):
        event_id = f"msg-{mailbox.pk}-{n}"
        recipients = [f"bob@{HOME}", f"carol@{HOME}", f"someone@{OUTSIDE}"]
        MessageEvent.objects.create(
            tenant=mailbox.tenant,
            event_id=event_id,
            time=now - timedelta(minutes=30 - n),
            sender=mailbox,
            recipients=recipients,
            recipient_count=3,
            internal_count=2,
            external_count=1,
            subject="Your invoice is overdue",
            verdict=MessageEvent.Verdict.PHISH,
        )
        ids.append(event_id)
    return MailCluster.objects.create(
        investigation=investigation,
        fingerprint=f"url:{mailbox.pk}",
        basis="url",
        label="Your invoice is overdue",
        verdict=Finding.Verdict.MALICIOUS,
        message_count=count,
        internal_recipients=2,
        external_recipients=1,
        verdict_counts={"phish": count},
        first_at=now - timedelta(minutes=30),
        last_at=now - timedelta(minutes=30 - count + 1),
        event_ids=ids,
    )


def approve_now(action: RemediationAction, user) -> RemediationAction:
    """Mark an action Approved through the ORM (for tests that drive execution by hand)."""
    RemediationAction.objects.filter(pk=action.pk).update(
        status=Status.APPROVED, decided_by=user, decided_at=timezone.now(), next_attempt_at=timezone.now()
    )
    action.refresh_from_db()
    return action
