"""Layer 2: message events and the ledger of every ingested event id.

``IngestedEvent`` holds one row per (tenant, event id) for *all* event types, with the hash of the event's
canonical content: finding the duplicates and conflicts of a batch is one query against it. ``MessageEvent``
is the sent-mail telemetry the detectors read, indexed for per-sender and per-tenant time windows.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models

from core.models import TelemetryEvent, Tenant, event_time_unique
from mailboxes.models import Mailbox


class EventType(models.TextChoices):
    """The event types of ingest contract v1 (DESIGN section 4)."""

    MAILBOX = "mailbox", "Mailbox"
    MESSAGE = "message", "Message"
    INBOX_RULE = "inbox_rule", "Inbox rule"
    FORWARDING = "forwarding", "Forwarding"
    DELEGATION = "delegation", "Delegation"
    SIGN_IN = "sign_in", "Sign-in"


class IngestedEvent(TelemetryEvent):
    """The id ledger: every event stored for a tenant, whatever its type. Unique per (tenant, event id).

    ``content_hash`` is the SHA-256 of the event's canonical JSON (known fields only, normalised), so
    re-sending the same event is recognised as a duplicate and the same id with other content as a conflict.
    """

    type = models.CharField(max_length=16, choices=EventType)
    content_hash = models.CharField(max_length=64)

    class Meta:  # unordered, unlike the other telemetry tables
        constraints = [event_time_unique("ingested_event_unique")]
        indexes = [models.Index(fields=["time"])]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class MessageEventQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> MessageEventQuerySet:
        return self.filter(tenant=tenant)

    def sent_by(self, mailbox: Mailbox | int) -> MessageEventQuerySet:
        return self.filter(sender=mailbox)

    def between(self, start: datetime, end: datetime) -> MessageEventQuerySet:
        """Messages whose event time is in [start, end]."""
        return self.filter(time__gte=start, time__lte=end)

    def malicious(self) -> MessageEventQuerySet:
        """Messages verdicted spam, phish or malware."""
        return self.filter(verdict__in=MessageEvent.BAD_VERDICTS)

    def with_related(self) -> MessageEventQuerySet:
        return self.select_related("sender", "tenant")


class MessageEvent(TelemetryEvent):
    """One message a mailbox of the tenant sent (``message`` event), with its recipients split by direction.

    Recipients are lowercased and de-duplicated; a recipient is internal when its domain is an accepted domain
    of the tenant at ingest time. ``verdict`` blank means unknown.
    """

    class Verdict(models.TextChoices):
        CLEAN = "clean", "Clean"
        SPAM = "spam", "Spam"
        BULK = "bulk", "Bulk"
        PHISH = "phish", "Phish"
        MALWARE = "malware", "Malware"

    BAD_VERDICTS = (Verdict.SPAM, Verdict.PHISH, Verdict.MALWARE)

    sender = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sent_messages")
    recipients = models.JSONField(default=list)
    recipient_count = models.PositiveIntegerField(default=0)
    internal_count = models.PositiveIntegerField(default=0)
    external_count = models.PositiveIntegerField(default=0)
    external_domains = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=1000, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict, blank=True)
    urls = models.JSONField(default=list, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    internet_message_id = models.CharField(max_length=998, blank=True)
    body_hash = models.CharField(max_length=128, blank=True)

    objects = MessageEventQuerySet.as_manager()

    class Meta(TelemetryEvent.Meta):
        constraints = [event_time_unique("message_event_unique")]
        indexes = [
            models.Index(fields=["tenant", "sender", "time"]),
            models.Index(fields=["tenant", "time"]),
            models.Index(fields=["time"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.time:%Y-%m-%d %H:%M} → {self.recipient_count}"


class SendingMinute(models.Model):
    """The recipients a mailbox sent in one minute of event time (issue 17): rolling per-user counters kept by
    the ingest service as it stores messages, so detection can bound a user's rolling hour or day from at most
    1,441 small rows instead of re-reading every message of the window.

    ``minute`` is the minute's number since the Unix epoch (an integer, so PostgreSQL and SQLite window
    functions can range over it), ``time`` its start (for retention). ``internal`` / ``external`` / ``total``
    count recipients as the message rows do; ``bad`` counts messages verdicted spam, phish or malware (a
    verdict merged later moves it). Counters only ever over-count the rows still stored (a message purged or
    deleted leaves its minute as it was), which keeps them a safe upper bound.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    sender = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    minute = models.BigIntegerField()
    time = models.DateTimeField()
    internal = models.PositiveIntegerField(default=0)
    external = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    bad = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "minute"], name="sending_minute_unique")]
        indexes = [models.Index(fields=["time"])]

    def __str__(self) -> str:
        return f"{self.sender_id} @ {self.time:%Y-%m-%d %H:%M}: {self.total}"
