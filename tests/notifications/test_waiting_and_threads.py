"""Actions waiting for approval past the threshold are announced once (webhook and mail), and the mails about
one alert / investigation share a thread (Message-ID, In-Reply-To, References)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.services import _alert_change
from core.models import ChangeFeedEntry
from core.services import publish_change
from notifications.models import EmailNotification, WaitingActionNotice
from notifications.tasks import beat_waiting_actions
from tests.alerts.alert_builders import make_alert
from tests.alerts.alert_builders import make_mailbox as make_alert_mailbox
from tests.investigations.action_builders import Status, Type, make_action, make_investigation, make_mailbox

pytestmark = pytest.mark.django_db(transaction=True)


def header(mail, name: str) -> str | None:
    value = mail.message()[name]
    return None if value is None else str(value).strip()


def test_an_action_waiting_past_the_threshold_is_announced_once(
    tenant, smtp_server, receiver, endpoint_for, settings
):
    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    settings.NOTIFY_ACTION_WAITING_MINUTES = 60
    endpoint_for(tenant, receiver.url, event_kinds=["action.waiting"])
    investigation = make_investigation(make_mailbox(tenant))
    now = timezone.now()
    waiting = make_action(investigation, Type.TURN_OFF_FORWARDING, proposed_at=now - timedelta(hours=2))
    make_action(investigation, Type.REVOKE_SESSIONS, proposed_at=now - timedelta(minutes=10))

    def decided(action_type: str, status: str, *, proposed: timedelta, decided: timedelta) -> None:
        """An action proposed and decided that long ago: no longer waiting, however old."""
        make_action(
            investigation, action_type, status=status, proposed_at=now - proposed, decided_at=now - decided
        )

    decided(
        Type.FORCE_PASSWORD_RESET, Status.APPROVED, proposed=timedelta(hours=2), decided=timedelta(minutes=90)
    )
    decided(Type.DISABLE_ACCOUNT, Status.REJECTED, proposed=timedelta(hours=3), decided=timedelta(hours=2))

    beat_waiting_actions()
    beat_waiting_actions()

    assert list(WaitingActionNotice.objects.values_list("action_id", flat=True)) == [waiting.pk]
    change = ChangeFeedEntry.objects.get(kind="action.waiting")
    assert (change.target_type, change.target_id) == ("investigations.remediationaction", str(waiting.pk))
    assert change.payload["action_id"] == waiting.pk
    assert change.payload["investigation_id"] == investigation.pk
    assert change.payload["status"] == "pending"
    assert change.payload["waiting_minutes"] >= 119
    assert len(receiver.requests) == 1
    body = receiver.requests[0].json()
    assert body["kind"] == "action.waiting"
    assert body["console_url"].endswith(f"/investigations/{investigation.pk}/")
    assert len(smtp_server.mails) == 1
    assert smtp_server.mails[0].rcpt_tos == ["soc@example.com"]
    assert header(smtp_server.mails[0], "Subject") == (
        "[SOC] Action waiting for approval: Turn off forwarding for alice@contoso.example"
    )


def test_the_waiting_mail_goes_to_the_sending_limit_policy_recipients(tenant, smtp_server, settings):
    from alerts.models import AlertPolicy
    from alerts.services import ensure_default_policies

    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    AlertPolicy.objects.filter(pk=policy.pk).update(notify_recipients=["lead@example.com"])
    make_action(
        make_investigation(make_mailbox(tenant)),
        Type.TURN_OFF_FORWARDING,
        proposed_at=timezone.now() - timedelta(hours=2),
    )
    beat_waiting_actions()
    assert [mail.rcpt_tos for mail in smtp_server.mails] == [["lead@example.com"]]


def test_two_mails_about_the_same_alert_share_one_thread(tenant, smtp_server, quiet_policy):
    quiet_policy(tenant, notify_recipients=["soc@example.com"])
    alert = make_alert(tenant, make_alert_mailbox(tenant, "alice@example.com"))
    # A repeat about the same alert (e.g. published again): it joins the first mail's thread.
    publish_change("alert.raised", target=alert, payload=_alert_change(alert))
    other = make_alert(tenant, make_alert_mailbox(tenant, "bob@example.com"))

    assert len(smtp_server.mails) == 3
    first, repeat, unrelated = smtp_server.mails
    root = f"<alert-{alert.pk}@{tenant.slug}.soc-console>"
    assert header(first, "Message-ID") == root
    assert header(first, "In-Reply-To") is None
    assert header(repeat, "In-Reply-To") == root
    assert header(repeat, "References") == root
    assert header(repeat, "Message-ID") not in (None, root)
    assert header(repeat, "Subject") == "Re: " + header(first, "Subject")
    assert header(unrelated, "Message-ID") == f"<alert-{other.pk}@{tenant.slug}.soc-console>"
    assert header(unrelated, "In-Reply-To") is None
    assert EmailNotification.objects.filter(message_id=root).count() == 1


def test_mails_about_one_investigation_share_a_thread(tenant, smtp_server, settings):
    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    for status in ("failed", "remediated"):
        publish_change(
            "investigation.status_changed",
            target=tenant,
            payload={
                "investigation_id": 12,
                "user": "alice@example.com",
                "before": "running",
                "status": status,
            },
        )
    first, second = smtp_server.mails
    root = f"<investigation-12@{tenant.slug}.soc-console>"
    assert header(first, "Message-ID") == root
    assert (header(second, "In-Reply-To"), header(second, "References")) == (root, root)
    assert header(first, "Subject") == "[SOC] Investigation #12 failed: alice@example.com"
    assert header(second, "Subject") == "Re: [SOC] Investigation #12 failed: alice@example.com"
    assert (
        "Investigation #12 remediated" in second.message().get_body(preferencelist=("plain",)).get_content()
    )
