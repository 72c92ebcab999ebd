"""Alert policies (per tenant, seeded from DESIGN section 5), alerts folded per user and policy,
their evidence, comments and suppressions."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from core.models import Tenant


class Severity(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"
    INFORMATIONAL = "informational", "Informational"


SEVERITY_RANK: dict[str, int] = {
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFORMATIONAL: 0,
}


def severity_rank() -> Case:
    """``severity`` as a number (high 3 to informational 0, else -1), so it sorts by meaning, not spelling.
    The alert list sorts by it and an index is built on the same expression (PostgreSQL matches the two)."""
    return Case(
        *(When(severity=severity, then=Value(rank)) for severity, rank in SEVERITY_RANK.items()),
        default=Value(-1),
        output_field=models.IntegerField(),
    )


class AlertPolicy(models.Model):
    """One policy of one tenant: what fires (thresholds), how alerts fold, what it does and whom it covers."""

    class Kind(models.TextChoices):
        SENDING_LIMIT = "sending_limit", "Sending limit"
        RESTRICTION = "restriction", "Restriction placed"
        SENDING_PATTERN = "sending_pattern", "Sending pattern"
        FORWARDING = "forwarding", "External forwarding"
        FORWARDING_RULE = "forwarding_rule", "Forwarding / redirect rule"
        INBOX_MANIPULATION = "inbox_manipulation", "Inbox manipulation rule"
        DELEGATION = "delegation", "Delegation"
        SIGN_IN = "sign_in", "Sign-in"
        ADMIN_INVESTIGATION = "admin_investigation", "Admin-triggered investigation"
        SEQUENCE = "sequence", "Unusual sign-in, then unusual activity"

    class Action(models.TextChoices):
        ALERT_ONLY = "alert_only", "Alert only"
        RESTRICT_UNTIL_NEXT_DAY = "restrict_until_next_day", "Restrict the user until the next day"
        RESTRICT_UNTIL_RELEASED = "restrict_until_released", "Restrict the user until released"

    class InvestigateMode(models.TextChoices):
        NEVER = "never", "Never"
        ALWAYS = "always", "Always"
        WHEN_OTHER_ALERT_OPEN = "when_other_alert_open", "When another alert is open for the user (24 h)"

    class Scope(models.TextChoices):
        ALL = "all", "All mailboxes"
        INCLUDE = "include", "Only the listed mailboxes and departments"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_policies")
    kind = models.CharField(max_length=32, choices=Kind)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=16, choices=Severity)
    category = models.CharField(max_length=64)
    thresholds = models.JSONField(default=dict, blank=True)
    aggregation_minutes = models.PositiveIntegerField(default=60)
    action = models.CharField(max_length=32, choices=Action, default=Action.ALERT_ONLY)
    investigate_mode = models.CharField(
        max_length=32, choices=InvestigateMode, default=InvestigateMode.ALWAYS
    )
    rerestrict_after_release = models.BooleanField(default=False)
    notify_recipients = models.JSONField(default=list, blank=True)
    # Email to notify_recipients for new alerts at or above this severity, at most this many a UTC day (then
    # one summary mail); sent by notifications/.
    notify_min_severity = models.CharField(max_length=16, choices=Severity, default=Severity.MEDIUM)
    notify_daily_limit = models.PositiveIntegerField(default=20)
    scope = models.CharField(max_length=16, choices=Scope, default=Scope.ALL)
    include_mailboxes = models.JSONField(default=list, blank=True)
    include_departments = models.JSONField(default=list, blank=True)
    exclude_mailboxes = models.JSONField(default=list, blank=True)
    exclude_departments = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind"], name="one_policy_per_kind_per_tenant")
        ]
        verbose_name_plural = "alert policies"

    def __str__(self) -> str:
        return self.name

    @property
    def aggregation_window(self) -> timedelta:
        return timedelta(minutes=self.aggregation_minutes)

    def covers(self, address: str, department: str) -> bool:
        """Whether the policy's scope includes a mailbox (exclusions win over inclusions)."""
        address, department = address.lower(), (department or "").lower()
        excluded_departments = {d.lower() for d in self.exclude_departments}
        if address in {a.lower() for a in self.exclude_mailboxes} or department in excluded_departments:
            return False
        if self.scope == self.Scope.ALL:
            return True
        return address in {a.lower() for a in self.include_mailboxes} or department in {
            d.lower() for d in self.include_departments
        }

    def thresholds_for(self, address: str, at: datetime | None = None) -> dict[str, int]:
        """The policy's thresholds with the mailbox's unexpired override applied on top."""
        values = dict(self.thresholds)
        at = at or timezone.now()
        for override in self.overrides.all():
            if override.mailbox_address == address.lower() and (
                override.expires_at is None or override.expires_at > at
            ):
                values.update(override.thresholds)
        return values


class PolicyOverride(models.Model):
    """Per-mailbox thresholds (a newsletter owner's higher limit), optionally expiring."""

    policy = models.ForeignKey(AlertPolicy, on_delete=models.CASCADE, related_name="overrides")
    mailbox_address = models.CharField(max_length=320)
    thresholds = models.JSONField(default=dict)
    expires_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["mailbox_address"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "mailbox_address"], name="one_override_per_mailbox")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_address}: {self.thresholds}"


class AlertQuerySet(models.QuerySet):
    def open(self) -> AlertQuerySet:
        return self.exclude(status=Alert.Status.RESOLVED)

    def for_user_address(self, address: str) -> AlertQuerySet:
        return self.filter(mailbox__address=address.lower())

    def with_related(self) -> AlertQuerySet:
        return self.select_related("tenant", "policy", "mailbox", "assigned_to", "resolved_by", "restriction")


class Alert(models.Model):
    """Matching events of one user and policy, folded while they keep coming within the aggregation window.

    ``evidence_count`` is the number of distinct evidence events, so re-running a detector adds nothing.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        RESOLVED = "resolved", "Resolved"

    class Classification(models.TextChoices):
        TP_COMPROMISED = "tp_compromised", "True positive: compromised account"
        TP_PHISHING = "tp_phishing", "True positive: phishing"
        TP_MALWARE = "tp_malware", "True positive: malware"
        TP_OTHER = "tp_other", "True positive: other"
        INFORMATIONAL = "informational", "Informational / expected activity"
        FALSE_POSITIVE = "false_positive", "False positive"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts")
    policy = models.ForeignKey(AlertPolicy, on_delete=models.PROTECT, related_name="alerts")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="alerts")
    title = models.CharField(max_length=300)
    severity = models.CharField(max_length=16, choices=Severity)
    category = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status, default=Status.NEW)
    classification = models.CharField(max_length=32, choices=Classification, blank=True)
    first_activity_at = models.DateTimeField()
    last_activity_at = models.DateTimeField()
    evidence_count = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The restriction this alert caused (or reports): the higher layer points down.
    restriction = models.ForeignKey(
        "restricted_users.Restriction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        permissions = [("triage_alert", "Can triage alerts (status, assignee, comments, resolve)")]
        indexes = [
            models.Index(fields=["tenant", "policy", "mailbox", "status"]),
            models.Index(fields=["tenant", "status", "severity"]),
            models.Index(fields=["mailbox", "created_at"]),
            # One user's alerts in the queue's default order (a user may have thousands).
            models.Index(fields=["mailbox", "-last_activity_at", "-id"], name="alert_mailbox_recent_idx"),
            # The alert list's default order: the newest 50 without sorting every alert.
            models.Index(fields=["-last_activity_at", "-id"], name="alert_recent_idx"),
            # The dashboard's trend by first activity, stacked by severity: an index-only scan of a window.
            models.Index(fields=["first_activity_at", "severity"], name="alert_first_activity_idx"),
            # The queue sorted by severity, and the open queue (most of the million alerts are resolved):
            # filtered by severity, in its default order, or by most events, without sorting every open alert.
            models.Index(severity_rank().desc(), name="alert_severity_rank_idx"),
            models.Index(
                fields=["severity", "-last_activity_at"],
                condition=~Q(status="resolved"),
                name="alert_open_severity_idx",
            ),
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=~Q(status="resolved"),
                name="alert_open_recent_idx",
            ),
            models.Index(
                fields=["-evidence_count"], condition=~Q(status="resolved"), name="alert_open_count_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} — {self.mailbox}"


class AlertEvidence(models.Model):
    """One telemetry event behind an alert, by its kind and ingest id (unique per tenant)."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        INBOX_RULE = "inbox_rule", "Inbox rule change"
        FORWARDING = "forwarding", "Forwarding change"
        DELEGATION = "delegation", "Delegation change"
        SIGN_IN = "sign_in", "Sign-in"
        RESTRICTION = "restriction", "Restriction"
        MANUAL = "manual", "Operator request"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=16, choices=Kind)
    event_id = models.CharField(max_length=200)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "kind", "event_id"], name="evidence_once_per_alert")
        ]
        indexes = [models.Index(fields=["kind", "event_id"])]

    def __str__(self) -> str:
        return f"{self.kind}:{self.event_id}"


class AlertComment(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.body[:60]


class SuppressionQuerySet(models.QuerySet):
    def active(self, at: datetime | None = None) -> SuppressionQuerySet:
        return self.filter(Q(until__gt=at or timezone.now()))


class Suppression(models.Model):
    """While active, a (policy, user) pair raises no new alert (set when resolving as expected activity …)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    policy = models.ForeignKey(AlertPolicy, on_delete=models.CASCADE, related_name="suppressions")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = SuppressionQuerySet.as_manager()

    class Meta:
        ordering = ["-until"]

    def __str__(self) -> str:
        return f"{self.policy} / {self.mailbox} until {self.until:%Y-%m-%d %H:%M}"


class EvaluationFailureQuerySet(models.QuerySet):
    def since(self, moment: datetime) -> EvaluationFailureQuerySet:
        return self.filter(failed_at__gte=moment)


class EvaluationFailure(models.Model):
    """A detector that failed for one mailbox of a batch (the other mailboxes were evaluated). ``attempt`` 0
    is the batch's own run; later attempts are the retries of just the failed mailboxes. Read by /healthz."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="evaluation_failures")
    mailbox_id = models.BigIntegerField()
    mailbox_address = models.CharField(max_length=320)
    detector = models.CharField(max_length=32)
    error = models.TextField()
    attempt = models.PositiveSmallIntegerField(default=0)
    final = models.BooleanField(default=False)  # no retry follows
    failed_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = EvaluationFailureQuerySet.as_manager()

    class Meta:
        ordering = ["-failed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.detector} failed for {self.mailbox_address} (attempt {self.attempt})"


class KnownContact(models.Model):
    """Per user, an external domain or recipient the user has written to: when first (event time), and the
    message that first did. The first-contact signals read it (a contact is new in a window when its
    first sighting falls inside it); ``alerts.contacts.learn_contacts`` keeps it up to date incrementally,
    batch by batch, with ``first_seen`` the minimum over every message so far, whatever their arrival order.
    """

    class Kind(models.TextChoices):
        DOMAIN = "domain", "External domain"
        RECIPIENT = "recipient", "External recipient"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind)
    value = models.CharField(max_length=320)
    first_seen = models.DateTimeField()
    first_event_id = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "kind", "value"], name="known_contact_once_per_user")
        ]
        indexes = [models.Index(fields=["mailbox", "kind", "first_seen"], name="known_contact_first_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} since {self.first_seen:%Y-%m-%d %H:%M}"


class AlertTally(models.Model):
    """How many alerts a tenant has per status, severity and hour of first activity (UTC), so the dashboard
    reads a few thousand rows instead of counting every alert.

    Invariant: ``count`` equals the number of alerts with that key. On PostgreSQL a trigger on the alert table
    keeps it (every insert, delete and update of the key, in the writing transaction, whatever wrote it: a
    service, a bulk ``update()``, a cascade), so it can never drift; see migration
    ``0010_alert_tally``. SQLite (the embedded mode) has no such trigger and its readers count the alerts
    themselves (:mod:`alerts.tallies`). Rows may fall to zero and stay.
    """

    # Deleted by the database with their tenant, after Django has deleted the tenant's alerts (whose trigger
    # writes here): a Python-side cascade could delete these rows first and let the trigger write them again.
    tenant = models.ForeignKey(Tenant, on_delete=models.DB_CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Alert.Status)
    severity = models.CharField(max_length=16, choices=Severity)
    hour = models.DateTimeField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "hour", "status", "severity"], name="alert_tally_key")
        ]
        indexes = [models.Index(fields=["hour"], name="alert_tally_hour_idx")]

    def __str__(self) -> str:
        return f"{self.count} {self.status} {self.severity} alerts first active {self.hour:%Y-%m-%d %H}:00"


class AlertUserDay(models.Model):
    """How many alerts of a mailbox had their last activity on one day (UTC), and how many of those are still
    open: the dashboard's "users with the most alerts" reads the best few of each day instead of grouping
    every recent alert by user.

    Invariant: ``total`` and ``open`` equal a recount of the alerts with that mailbox and day. Kept on
    PostgreSQL by a trigger like :class:`AlertTally` (migration ``0012_alert_user_day``); SQLite readers count
    the alerts themselves.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.DB_CASCADE, related_name="+")  # see AlertTally.tenant
    # No constraint: a deleted mailbox's alerts are deleted first and the trigger brings its rows to zero.
    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    day = models.DateTimeField()
    total = models.IntegerField(default=0)
    open = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "day"], name="alert_user_day_key")]
        indexes = [models.Index(fields=["day", "-total"], name="alert_user_day_top_idx")]

    def __str__(self) -> str:
        return f"{self.total} alerts ({self.open} open) of mailbox {self.mailbox_id} on {self.day:%Y-%m-%d}"
