"""Webhook endpoints and their deliveries, notification mails and the daily mail budget (DESIGN section 3:
``notifications/`` sends what the core outbox holds)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from core.models import ChangeFeedEntry, CreatedByPerson, OutboxMessage, Tenant
from investigations.models import RemediationAction

# The change kinds services publish (core.services.publish_change); an endpoint subscribes to some or all.
EVENT_KINDS = (
    ("alert.raised", "Alert raised"),
    ("alert.updated", "Alert updated (folded, status)"),
    ("alert.resolved", "Alert resolved"),
    ("alert.reopened", "Alert reopened"),
    ("restriction.placed", "User restricted from sending"),
    ("restriction.extended", "Restriction extended"),
    ("restriction.released", "Restriction released"),
    ("restriction.expired", "Restriction expired"),
    ("investigation.opened", "Investigation opened"),
    ("investigation.status_changed", "Investigation status changed"),
    ("investigation.stopped", "Investigation stopped by an operator"),
    ("action.proposed", "Remediation action proposed again"),
    ("action.decided", "Remediation action approved / rejected"),
    ("action.completed", "Remediation action completed"),
    ("action.updated", "Remediation action failed / needs a manual step"),
    ("action.expired", "Remediation action expired undecided"),
    ("action.undone", "Remediation action undone"),
    ("action.waiting", "Remediation action waiting for approval past the threshold"),
    ("incident.created", "Incident opened"),
    ("incident.updated", "Incident updated (alert / restriction / investigation added, assigned, status)"),
    ("incident.resolved", "Incident resolved"),
    ("incident.reopened", "Incident reopened"),
)
TEST_KIND = "webhook.test"


class WebhookEndpoint(CreatedByPerson):
    """An HTTPS (or HTTP) receiver of a tenant's changes, each POST signed with the endpoint's secret.

    The secret is stored (it is needed to sign) but never rendered nor returned after creation: pages show
    ``secret_prefix`` only. An empty ``event_kinds`` subscribes to every kind.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=128)
    secret_prefix = models.CharField(max_length=16)
    event_kinds = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def wants(self, kind: str) -> bool:
        return not self.event_kinds or kind in self.event_kinds


class Attempted(models.Model):
    """What a webhook delivery and a mail share: a status claimed with a conditional update, and retries."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed (daily limit)"

    kind = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class WebhookDelivery(Attempted):
    """One change (or a test) to one endpoint. ``delivery_id`` travels as ``X-SOC-Delivery`` so a receiver
    can drop a repeat; ``body`` is the exact JSON signed and sent on every attempt."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    outbox = models.ForeignKey(
        OutboxMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    change = models.ForeignKey(
        ChangeFeedEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    body = models.TextField()
    last_response_code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "outbox"], name="one_delivery_per_endpoint_and_change"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} → {self.endpoint} ({self.status})"


class EmailNotification(Attempted):
    """One notification mail for one outbox message (or the day's summary that replaces a flood)."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    outbox = models.OneToOneField(
        OutboxMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=200)
    text_body = models.TextField()
    html_body = models.TextField()
    is_summary = models.BooleanField(default=False)
    # Mail threading: ``thread`` is the deterministic root Message-ID of the alert / restriction /
    # investigation the mail is about; the first mail of a thread sends it as its own ``message_id`` (unique,
    # so only one mail ever claims it), the others send it as In-Reply-To and References.
    thread = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"], condition=~models.Q(message_id=""), name="one_mail_per_message_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({self.status})"


class EmailBudget(models.Model):
    """Mails sent under one budget (a policy, or a tenant's SOC notices) on one UTC day.

    Claimed with conditional updates (``sent < limit``, then ``summary_sent`` false → true), so concurrent
    dispatchers never exceed the limit and the summary goes once.
    """

    key = models.CharField(max_length=64)
    day = models.DateField()
    limit = models.PositiveIntegerField()
    sent = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    summary_sent = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="one_budget_per_key_and_day")]

    def __str__(self) -> str:
        return f"{self.key} {self.day}: {self.sent}/{self.limit} (+{self.suppressed} suppressed)"


class WaitingActionNotice(models.Model):
    """A remediation action announced as waiting for approval past ``NOTIFY_ACTION_WAITING_MINUTES``.

    One row per action ever (``action_id`` is unique), written in the transaction that publishes the
    ``action.waiting`` change, so beat never announces the same action twice.
    """

    action = models.OneToOneField(RemediationAction, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"action #{self.action_id} waiting (announced {self.created_at:%Y-%m-%d %H:%M})"
