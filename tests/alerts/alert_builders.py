"""Small builders for the alert UI, API and policy tests: mailboxes through the ORM, alerts through the real
``raise_alert`` service, so the rows look exactly like what the detectors produce."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from mailboxes.models import Mailbox
from tests.builders import make_alert, make_mailbox, policy_of

__all__ = ["make_alert", "make_mailbox", "make_message", "policy_of"]


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
