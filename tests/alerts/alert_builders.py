"""Small builders for the alert UI, API and policy tests: mailboxes through the ORM, alerts through the real
``raise_alert`` service, so the rows look exactly like what the detectors produce."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from alerts.detection import Detection, Evidence
from alerts.models import Alert, AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from mailboxes.models import Mailbox

_ids = itertools.count(1)


def make_mailbox(tenant, address: str, *, display_name: str = "", department: str = "") -> Mailbox:
    return Mailbox.objects.create(
        tenant=tenant, address=address.lower(), display_name=display_name, department=department
    )


def policy_of(tenant, kind: str = AlertPolicy.Kind.SENDING_LIMIT) -> AlertPolicy:
    return ensure_default_policies(tenant)[kind]


def make_alert(
    tenant,
    mailbox: Mailbox,
    kind: str = AlertPolicy.Kind.FORWARDING,
    *,
    at: datetime | None = None,
    events: int = 1,
    event_kind: str = "forwarding",
    event_ids: list[str] | None = None,
    details: dict | None = None,
) -> Alert:
    """Raise (or fold into) an alert of ``kind`` for ``mailbox`` with ``events`` fresh evidence events."""
    at = at or timezone.now() - timedelta(minutes=5)
    ids = event_ids or [f"evt-{next(_ids)}" for _ in range(events)]
    detection = Detection(
        mailbox_id=mailbox.pk,
        evidence=[
            Evidence(event_kind, event_id, at + timedelta(seconds=i)) for i, event_id in enumerate(ids)
        ],
        details=details or {},
    )
    alerts = raise_alert(policy_of(tenant, kind), detection)
    assert alerts, "the alert was not raised (suppressed or duplicate evidence)"
    return alerts[-1]


def make_message(
    tenant,
    sender: Mailbox,
    event_id: str,
    *,
    subject: str = "",
    recipients: list[str] | None = None,
    verdict: str = "",
    at: datetime | None = None,
):
    """A stored sent-mail event as the ingest service would write it (every recipient external here)."""
    from mailflow.models import MessageEvent

    recipients = recipients or ["someone@elsewhere.example"]
    return MessageEvent.objects.create(
        tenant=tenant,
        event_id=event_id,
        time=at or timezone.now() - timedelta(minutes=5),
        sender=sender,
        recipients=recipients,
        recipient_count=len(recipients),
        external_count=len(recipients),
        subject=subject,
        verdict=verdict,
    )
