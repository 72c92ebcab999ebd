"""Notification mail through a real SMTP server: who gets what, the daily limit, and safe content."""

from __future__ import annotations

import pytest

from alerts.models import AlertPolicy
from notifications.models import Attempted, EmailNotification
from restricted_users.services import restrict_user
from tests.alerts.alert_builders import make_alert, make_mailbox

pytestmark = pytest.mark.django_db(transaction=True)


def bodies(mail) -> tuple[str, str]:
    message = mail.message()
    return (
        message.get_body(preferencelist=("plain",)).get_content(),
        message.get_body(preferencelist=("html",)).get_content(),
    )


def test_a_new_alert_mails_the_policy_recipients_with_a_console_link(
    tenant, smtp_server, quiet_policy, settings
):
    settings.CONSOLE_BASE_URL = "https://soc.example.com"
    quiet_policy(tenant, notify_recipients=["soc@example.com", "lead@example.com"])
    alert = make_alert(tenant, make_mailbox(tenant, "alice@example.com"))

    assert len(smtp_server.mails) == 1
    mail = smtp_server.mails[0]
    assert sorted(mail.rcpt_tos) == ["lead@example.com", "soc@example.com"]
    message = mail.message()
    assert (
        message["Subject"].strip()
        == "[SOC] High alert: Suspicious email forwarding activity for alice@example.com"
    )
    text, html = bodies(mail)
    link = f"https://soc.example.com/alerts/{alert.pk}/"
    assert link in text
    assert f'href="{link}"' in html
    assert EmailNotification.objects.get().status == Attempted.Status.SUCCEEDED


def test_alerts_below_the_notification_severity_send_no_mail(tenant, smtp_server, quiet_policy):
    quiet_policy(tenant, notify_recipients=["soc@example.com"], notify_min_severity="high", severity="medium")
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"))
    assert smtp_server.mails == []


def test_a_policy_without_recipients_sends_no_mail(tenant, smtp_server, quiet_policy):
    quiet_policy(tenant)
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"))
    assert smtp_server.mails == []


def test_past_the_daily_limit_one_summary_replaces_the_flood(tenant, smtp_server, quiet_policy):
    quiet_policy(tenant, notify_recipients=["soc@example.com"], notify_daily_limit=3)
    for n in range(8):
        make_alert(tenant, make_mailbox(tenant, f"user{n}@example.com"))

    subjects = [mail.message()["Subject"].strip() for mail in smtp_server.mails]
    assert len(subjects) == 4
    assert all("High alert" in subject for subject in subjects[:3])
    assert subjects[3] == "[SOC] Daily notification limit reached: Suspicious email forwarding activity"
    assert EmailNotification.objects.filter(status=Attempted.Status.SUPPRESSED).count() == 4


def test_telemetry_in_a_mail_is_escaped_and_truncated(tenant, smtp_server, quiet_policy):
    policy = quiet_policy(tenant, notify_recipients=["soc@example.com"])
    AlertPolicy.objects.filter(pk=policy.pk).update(name="<script>alert(1)</script> " + "x" * 170)
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"))

    message = smtp_server.mails[0].message()
    assert len(message["Subject"]) <= 150
    text, html = bodies(smtp_server.mails[0])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "x" * 170 in html  # the body keeps what fits (200 characters), escaped


def test_a_restriction_notifies_the_soc_list(tenant, smtp_server, settings):
    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    alice = make_mailbox(tenant, "alice@example.com")
    restrict_user(
        alice,
        policy_name="Email sending limit exceeded",
        reason={"limit_name": "external_per_hour", "count": 612},
        expires_at=None,
        source="policy",
    )
    subjects = [mail.message()["Subject"].strip() for mail in smtp_server.mails]
    assert "[SOC] User restricted from sending: alice@example.com" in subjects


def test_an_unreachable_smtp_server_leaves_the_mail_pending_for_a_retry(tenant, quiet_policy, settings):
    from .conftest import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    quiet_policy(tenant, notify_recipients=["soc@example.com"])
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"))
    mail = EmailNotification.objects.get()
    assert (mail.status, mail.attempts) == (Attempted.Status.PENDING, 1)
    assert "Connection" in mail.last_error or "refused" in mail.last_error.lower()


@pytest.mark.parametrize(
    ("status", "mailed"), [("remediated", True), ("failed", True), ("pending_action", False)]
)
def test_investigations_remediated_or_failed_notify_the_soc_list(
    tenant, smtp_server, settings, status, mailed
):
    from core.services import publish_change

    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    publish_change(
        "investigation.status_changed",
        target=tenant,
        payload={"investigation_id": 12, "user": "alice@example.com", "before": "running", "status": status},
    )
    subjects = [mail.message()["Subject"].strip() for mail in smtp_server.mails]
    if mailed:
        assert subjects == [f"[SOC] Investigation #12 {status.replace('_', ' ')}: alice@example.com"]
        assert "/investigations/12/" in bodies(smtp_server.mails[0])[0]
    else:
        assert subjects == []


def test_a_release_past_the_cap_is_flagged_in_the_mail(tenant, smtp_server, settings):
    from core.services import publish_change

    settings.SOC_NOTIFY_EMAILS = ["soc@example.com"]
    publish_change(
        "restriction.released",
        target=tenant,
        payload={"user": "alice@example.com", "flagged": True, "releases_in_window": 4, "released_by": "ada"},
    )
    mail = smtp_server.mails[0]
    assert mail.message()["Subject"].strip() == (
        "[SOC] Restriction released past the release cap: alice@example.com"
    )
    assert "override reason" in bodies(mail)[0]
