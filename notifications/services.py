"""Writes of notifications: webhook endpoints (audited), the dispatcher that turns outbox messages into
webhook deliveries and mails, and the senders that claim one delivery at a time and retry with backoff.
Mail wording: :mod:`notifications.wording`; webhook HTTP: :mod:`notifications.transport`.

Delivery semantics: every attempt first claims its row with a conditional update (``pending`` → ``sending``),
so two workers, a retry and beat never send the same delivery twice. A worker killed between the send and
the bookkeeping leaves the row ``sending``; beat returns it to ``pending`` after ``NOTIFY_LEASE_SECONDS`` and
it is sent again with the same ``X-SOC-Delivery`` id, which receivers use to drop the repeat.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Model
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerts.models import SEVERITY_RANK, AlertPolicy
from core.models import OutboxMessage, Tenant
from core.queueing import enqueue, enqueue_on_commit
from core.services import audit_field_change, publish_change, record_audit, sequence_changes
from investigations.models import RemediationAction

from . import targets
from .exceptions import EndpointError
from .models import (
    EVENT_KINDS,
    TEST_KIND,
    Attempted,
    EmailBudget,
    EmailNotification,
    WaitingActionNotice,
    WebhookDelivery,
    WebhookEndpoint,
)
from .transport import post_webhook
from .wording import WAITING_KIND, console_url_for, describe, mail_subject, thread_of

logger = logging.getLogger(__name__)

DELIVER_WEBHOOK_TASK = "notifications.deliver_webhook"
SEND_EMAIL_TASK = "notifications.send_email"
DISPATCH_TASK = "notifications.dispatch"
S = Attempted.Status

# ------------------------------------------------------------------------------------------------ endpoints


def create_endpoint(
    tenant: Tenant, *, actor: User, name: str, url: str, event_kinds: Iterable[str] = ()
) -> tuple[WebhookEndpoint, str]:
    """Add a webhook receiver for ``tenant``; returns it with its signing secret, shown to the caller once."""
    name, url, kinds = name.strip(), url.strip(), sorted(set(event_kinds))
    if not name:
        raise EndpointError("A webhook endpoint needs a name.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise EndpointError("Give an http:// or https:// URL.") from exc
    targets.check_url(url)
    unknown = sorted(set(kinds) - {kind for kind, _ in EVENT_KINDS})
    if unknown:
        raise EndpointError(f"Unknown event kind(s): {', '.join(unknown)}.")
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            name=name,
            url=url,
            secret=secret,
            secret_prefix=secret[:10],
            event_kinds=kinds,
            created_by=actor,
        )
        record_audit(
            "notifications.webhook.created",
            target=endpoint,
            actor=actor,
            after={"name": name, "url": url, "event_kinds": kinds, "secret_prefix": endpoint.secret_prefix},
        )
    return endpoint, secret


def disable_endpoint(endpoint: WebhookEndpoint, *, actor: User) -> WebhookEndpoint:
    """Stop sending to an endpoint at once (pending deliveries fail on their next attempt); idempotent."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.enabled:
            return endpoint
        endpoint.enabled = False
        endpoint.disabled_at = timezone.now()
        endpoint.save(update_fields=["enabled", "disabled_at"])
        audit_field_change(
            "notifications.webhook.disabled", endpoint, actor=actor, field="enabled", before=True, after=False
        )
    return endpoint


def send_test_delivery(endpoint: WebhookEndpoint, *, actor: User) -> WebhookDelivery:
    """Queue a signed ``webhook.test`` delivery to an endpoint, to check the receiver and its secret."""
    if not endpoint.enabled:
        raise EndpointError("This endpoint is disabled.")
    targets.check_url(endpoint.url)
    document = {
        "schema": 1,
        "id": None,
        "kind": TEST_KIND,
        "at": timezone.now().isoformat(),
        "tenant": endpoint.tenant.slug,
        "target": {"type": "notifications.webhookendpoint", "id": str(endpoint.pk)},
        "data": {"message": "Test delivery from the SOC console.", "requested_by": actor.get_username()},
    }
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, kind=TEST_KIND, body=_body(document))
        record_audit("notifications.webhook.tested", target=endpoint, actor=actor)
        enqueue_on_commit(DELIVER_WEBHOOK_TASK, delivery.pk)
    return delivery


# ------------------------------------------------------------------------------------------------ dispatch


def dispatch_outbox(batch: int = 100) -> int:
    """Turn every pending outbox message into webhook deliveries and mails; returns how many were handled.

    Rows are claimed with ``SKIP LOCKED`` so concurrent dispatchers share the work; a message is marked
    dispatched in the transaction that creates its deliveries, and the sends are enqueued after commit.
    """
    sequence_changes()
    handled = 0
    while True:
        with transaction.atomic():
            messages = list(
                OutboxMessage.objects.pending().select_for_update(skip_locked=True).order_by("id")[:batch]
            )
            if not messages:
                return handled
            endpoints = _endpoints_by_tenant({m.tenant_id for m in messages})
            for message in messages:
                for endpoint in endpoints.get(message.tenant_id, []):
                    if endpoint.wants(message.kind):
                        delivery, created = WebhookDelivery.objects.get_or_create(
                            endpoint=endpoint,
                            outbox=message,
                            defaults={
                                "change_id": message.change_id,
                                "kind": message.kind,
                                "body": _body(message.payload),
                            },
                        )
                        if created:
                            enqueue_on_commit(DELIVER_WEBHOOK_TASK, delivery.pk)
                mail = _plan_email(message)
                if mail is not None and mail.status == S.PENDING:
                    enqueue_on_commit(SEND_EMAIL_TASK, mail.pk)
            OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
                state=OutboxMessage.State.DISPATCHED, dispatched_at=timezone.now()
            )
        handled += len(messages)


def _endpoints_by_tenant(tenant_ids: set[int | None]) -> dict[int | None, list[WebhookEndpoint]]:
    found: dict[int | None, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(
        tenant_id__in={t for t in tenant_ids if t is not None}, enabled=True
    ):
        found.setdefault(endpoint.tenant_id, []).append(endpoint)
    return found


def _body(document: dict[str, Any]) -> str:
    """The exact bytes (as text) a delivery signs and sends: the change document plus its console link."""
    return json.dumps({**document, "console_url": console_url_for(document)}, sort_keys=True)


# ------------------------------------------------------------------------------------------------ mail


def _plan_email(message: OutboxMessage) -> EmailNotification | None:
    """The mail an outbox message calls for (or its suppression record), within the day's budget."""
    rule = _mail_rule(message)
    if rule is None:
        return None
    recipients, budget_key, limit, label = rule
    data = message.payload.get("data") or {}
    budget = _budget(budget_key, limit)
    if EmailBudget.objects.filter(pk=budget.pk, sent__lt=F("limit")).update(sent=F("sent") + 1):
        subject, context = describe(message.kind, data)
        context["url"] = console_url_for(message.payload)
        return _mail(message, recipients, subject, context, summary=False, thread=thread_of(message.payload))
    EmailBudget.objects.filter(pk=budget.pk).update(suppressed=F("suppressed") + 1)
    if EmailBudget.objects.filter(pk=budget.pk, summary_sent=False).update(summary_sent=True):
        subject = f"Daily notification limit reached: {label}"
        context = {
            "headline": subject,
            "lines": [
                ("Limit", f"{limit} mails per UTC day"),
                ("What happens now", "No more mails for this today; the console lists everything."),
            ],
            "url": settings.CONSOLE_BASE_URL.rstrip("/") + reverse("console:alert_list"),
        }
        return _mail(message, recipients, subject, context, summary=True)
    return EmailNotification.objects.create(
        tenant_id=message.tenant_id,
        outbox=message,
        kind=message.kind,
        recipients=recipients,
        subject=mail_subject(describe(message.kind, data)[0]),
        status=S.SUPPRESSED,
        finished_at=timezone.now(),
    )


def _mail_rule(message: OutboxMessage) -> tuple[list[str], str, int, str] | None:
    """(recipients, budget key, daily limit, budget label) for a message that notifies by mail, else None.

    New alerts go to their policy's recipients from its notification severity up; restrictions placed and
    released, investigations remediated or failed and actions waiting for approval past the threshold go to
    the sending-limit policy's recipients, else to ``SOC_NOTIFY_EMAILS``.
    """
    data: dict[str, Any] = message.payload.get("data") or {}
    if message.kind == "alert.raised":
        policy = AlertPolicy.objects.filter(pk=data.get("policy_id", 0)).first()  # 0: no policy
        if policy is None or not policy.notify_recipients:
            return None
        if SEVERITY_RANK.get(data.get("severity", ""), 0) < SEVERITY_RANK.get(policy.notify_min_severity, 0):
            return None
        return list(policy.notify_recipients), f"policy:{policy.pk}", policy.notify_daily_limit, policy.name
    soc_kind = message.kind in ("restriction.placed", "restriction.released", WAITING_KIND) or (
        message.kind == "investigation.status_changed" and data.get("status") in ("remediated", "failed")
    )
    if not soc_kind:
        return None
    policy = AlertPolicy.objects.filter(tenant=message.tenant_id, kind=AlertPolicy.Kind.SENDING_LIMIT).first()
    recipients = list(policy.notify_recipients) if policy and policy.notify_recipients else []
    recipients = recipients or list(settings.SOC_NOTIFY_EMAILS)
    if not recipients:
        return None
    limit = policy.notify_daily_limit if policy else settings.SOC_NOTIFY_DAILY_LIMIT
    return recipients, f"soc:{message.tenant_id}", limit, "restrictions and investigations"


def _budget(key: str, limit: int) -> EmailBudget:
    budget, _ = EmailBudget.objects.get_or_create(
        key=key, day=timezone.now().date(), defaults={"limit": limit}
    )
    if budget.limit != limit:  # the policy's limit was edited today: the new one applies at once
        EmailBudget.objects.filter(pk=budget.pk).update(limit=limit)
    return budget


def _mail(
    message: OutboxMessage,
    recipients: list[str],
    subject: str,
    context: dict[str, Any],
    *,
    summary: bool,
    thread: str = "",
) -> EmailNotification:
    """Record one mail. In a thread, the first mail claims the root Message-ID (unique: exactly one mail ever
    does, even with concurrent dispatchers); later ones reply to it and keep its subject, with "Re: "."""
    valid = []
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:  # an invalid address is skipped, logged
            logger.warning("Skipping invalid notification recipient %r", address)
        else:
            valid.append(address)
    fields: dict[str, Any] = {
        "tenant_id": message.tenant_id,
        "outbox": message,
        "kind": message.kind,
        "recipients": valid,
        "subject": mail_subject(subject.removeprefix("[SOC] ")),
        "text_body": render_to_string("notifications/email.txt", context),
        "html_body": render_to_string("notifications/email.html", context),
        "is_summary": summary,
        "status": S.PENDING if valid else S.FAILED,
        "last_error": "" if valid else "no valid recipient",
    }
    if not thread:
        return EmailNotification.objects.create(**fields)
    root = EmailNotification.objects.filter(message_id=thread).only("subject").first()
    if root is None:
        try:
            with transaction.atomic():
                return EmailNotification.objects.create(**fields, thread=thread, message_id=thread)
        except IntegrityError:  # a concurrent dispatcher sent the thread's first mail
            root = EmailNotification.objects.filter(message_id=thread).only("subject").first()
    if root is not None:
        fields["subject"] = f"Re: {root.subject}"
    return EmailNotification.objects.create(**fields, thread=thread)


def send_email(notification_id: int) -> str | None:
    """Send one notification mail (claimed first, so it goes once); retried with backoff on SMTP errors."""
    claimed_at = _claim(EmailNotification, notification_id)
    if claimed_at is None:
        return None
    mail = EmailNotification.objects.get(pk=notification_id)
    headers = {}
    if mail.message_id:
        headers["Message-ID"] = mail.message_id
    elif mail.thread:
        headers["In-Reply-To"] = headers["References"] = mail.thread
    message = EmailMultiAlternatives(
        mail.subject, mail.text_body, settings.DEFAULT_FROM_EMAIL, mail.recipients, headers=headers
    )
    message.attach_alternative(mail.html_body, "text/html")
    try:
        message.send()
    except Exception as exc:  # noqa: BLE001 - any SMTP / socket error is recorded and retried, never lost
        return _failed(EmailNotification, mail, claimed_at, f"{type(exc).__name__}: {exc}", SEND_EMAIL_TASK)
    return _succeeded(EmailNotification, mail, claimed_at)


# ------------------------------------------------------------------------------------------ waiting actions


def announce_waiting_actions(now: datetime | None = None) -> int:
    """Beat: publish one ``action.waiting`` change per remediation action still Pending more than
    ``NOTIFY_ACTION_WAITING_MINUTES`` after it was proposed; returns how many were announced.

    Each action is announced once ever: its :class:`WaitingActionNotice` (unique per action) is written in the
    transaction of the change, with the action locked and re-checked, so repeated or concurrent runs and an
    action decided meanwhile announce nothing.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.NOTIFY_ACTION_WAITING_MINUTES)
    due = (
        RemediationAction.objects.pending()
        .filter(proposed_at__lt=cutoff)
        .exclude(pk__in=WaitingActionNotice.objects.values("action_id"))
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    announced = 0
    for pk in list(due):
        with transaction.atomic():
            action = (
                RemediationAction.objects.pending()
                .select_for_update(of=("self",))
                .select_related("investigation__mailbox")
                .filter(pk=pk, proposed_at__lt=cutoff)
                .first()
            )
            if action is None:
                continue
            _, created = WaitingActionNotice.objects.get_or_create(action=action)
            if not created:
                continue
            publish_change(
                WAITING_KIND,
                target=action,
                payload={
                    "action_id": action.pk,
                    "investigation_id": action.investigation_id,
                    "user": action.investigation.mailbox.address,
                    "action_type": action.action_type,
                    "target": action.target_label,
                    "status": action.status,
                    "proposed_at": action.proposed_at.isoformat(),
                    "waiting_minutes": int((now - action.proposed_at).total_seconds() // 60),
                },
            )
            announced += 1
    return announced


def deliver_webhook(delivery_id: int) -> str | None:
    """Send one webhook delivery (claimed first, so never twice at once); 2xx succeeds, else retry later."""
    claimed_at = _claim(WebhookDelivery, delivery_id)
    if claimed_at is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if not delivery.endpoint.enabled:
        return _failed(WebhookDelivery, delivery, claimed_at, "endpoint disabled", None, final=True)
    try:
        code, error = post_webhook(delivery)
    except targets.TargetRefused as exc:
        return _failed(WebhookDelivery, delivery, claimed_at, str(exc)[:500], None, final=True)
    WebhookDelivery.objects.filter(pk=delivery_id).update(last_response_code=code)
    if code is not None and 200 <= code < 300:
        return _succeeded(WebhookDelivery, delivery, claimed_at)
    return _failed(WebhookDelivery, delivery, claimed_at, error or f"HTTP {code}", DELIVER_WEBHOOK_TASK)


# ------------------------------------------------------------------------------------------------ attempts


def retry_delay(attempts: int) -> float:
    """Exponential backoff after the ``attempts``-th failure, capped at an hour."""
    return min(settings.NOTIFY_RETRY_BACKOFF_SECONDS * 2 ** (attempts - 1), 3600)


def _claim(model: type[Attempted], pk: int) -> datetime | None:
    now = timezone.now()
    claimed = model._default_manager.filter(pk=pk, status=S.PENDING, next_attempt_at__lte=now).update(
        status=S.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    return now if claimed else None


def _succeeded(model: type[Attempted], row: Attempted, claimed_at: datetime) -> str:
    model._default_manager.filter(pk=row.pk, status=S.SENDING, claimed_at=claimed_at).update(
        status=S.SUCCEEDED, finished_at=timezone.now(), last_error=""
    )
    return S.SUCCEEDED


def _failed(
    model: type[Attempted],
    row: Model,
    claimed_at: datetime,
    error: str,
    task: str | None,
    *,
    final: bool = False,
) -> str:
    attempts = model._default_manager.filter(pk=row.pk).values_list("attempts", flat=True)[0]
    if final or attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        model._default_manager.filter(pk=row.pk, status=S.SENDING, claimed_at=claimed_at).update(
            status=S.FAILED, finished_at=timezone.now(), last_error=error
        )
        logger.warning(
            "%s #%s failed for good after %s attempts: %s", model.__name__, row.pk, attempts, error
        )
        return S.FAILED
    delay = retry_delay(attempts)
    model._default_manager.filter(pk=row.pk, status=S.SENDING, claimed_at=claimed_at).update(
        status=S.PENDING, next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=error
    )
    if task is not None:
        enqueue(task, row.pk, countdown=delay)
    return S.PENDING


def retry_due(now: datetime | None = None) -> int:
    """Beat: return lapsed claims, re-send due deliveries and mails, dispatch outbox rows left behind.

    Returns how many sends were enqueued. The countdown retries usually get there first; this catches a lost
    broker message, a restarted worker and a change committed while the broker was down.
    """
    now = now or timezone.now()
    lapsed = now - timedelta(seconds=settings.NOTIFY_LEASE_SECONDS)
    enqueued = 0
    for model, task in ((WebhookDelivery, DELIVER_WEBHOOK_TASK), (EmailNotification, SEND_EMAIL_TASK)):
        model._default_manager.filter(status=S.SENDING, claimed_at__lt=lapsed).update(status=S.PENDING)
        for pk in model._default_manager.filter(status=S.PENDING, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:1000]:
            enqueue(task, pk)
            enqueued += 1
    if OutboxMessage.objects.pending().exists():
        enqueue(DISPATCH_TASK)
    return enqueued
