"""Automated investigations (the compromised-user playbook, DESIGN section 6): one per user while open, its
analyzer runs, findings keyed by entity, mail clusters, and the remediation actions it proposes."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.models import Tenant

ACTION_EXPIRY = timedelta(days=7)


class InvestigationQuerySet(models.QuerySet):
    def open(self) -> InvestigationQuerySet:
        """Investigations a new trigger correlates into instead of opening another."""
        return self.filter(status__in=Investigation.OPEN_STATUSES)

    def pending_action(self) -> InvestigationQuerySet:
        return self.filter(status=Investigation.Status.PENDING_ACTION)

    def with_related(self) -> InvestigationQuerySet:
        return self.select_related("tenant", "mailbox", "trigger_alert", "started_by")


class Investigation(models.Model):
    """The playbook's run over one user. Status follows DESIGN 6's table, derived from runs and actions."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FAILED = "failed", "Failed"
        NO_THREATS = "no_threats", "No threats found"
        PARTIALLY_INVESTIGATED = "partially_investigated", "Partially investigated"
        PENDING_ACTION = "pending_action", "Pending action"
        PARTIALLY_REMEDIATED = "partially_remediated", "Partially remediated"
        REMEDIATED = "remediated", "Remediated"
        TERMINATED_BY_SYSTEM = "terminated_by_system", "Terminated by system"
        TERMINATED_BY_USER = "terminated_by_user", "Terminated by user"

    class Verdict(models.TextChoices):
        COMPROMISED = "compromised", "Compromised"
        SUSPICIOUS = "suspicious", "Suspicious"
        CLEAN = "clean", "Clean"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING, Status.PENDING_ACTION, Status.PARTIALLY_REMEDIATED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="investigations")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="investigations")
    status = models.CharField(max_length=32, choices=Status, default=Status.QUEUED, db_index=True)
    trigger_alert = models.ForeignKey(
        "alerts.Alert",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="triggered_investigations",
    )
    alerts = models.ManyToManyField("alerts.Alert", blank=True, related_name="investigations")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict = models.CharField(max_length=16, choices=Verdict, blank=True)
    risk_score = models.PositiveIntegerField(default=0)
    # Every point of the score names its reason: [{"points": 30, "reason": "...", "analyzer": "..."}].
    risk_reasons = models.JSONField(default=list, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stop_comment = models.TextField(blank=True)
    # The playbook's claim on a run (a lease): a worker killed mid-run loses it after RUN_LEASE.
    running_since = models.DateTimeField(null=True, blank=True)
    # When a trigger last asked for a (re-)run; a run claimed before it is followed by another.
    run_requested_at = models.DateTimeField(null=True, blank=True)
    # Analyzers that failed in the latest run (flagged on the page; the others' findings stand).
    failed_analyzers = models.JSONField(default=list, blank=True)

    objects = InvestigationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("start_investigation", "Can start a compromised-user investigation"),
            ("stop_investigation", "Can stop an investigation"),
        ]
        indexes = [
            models.Index(fields=["tenant", "mailbox", "status"]),
            # The dashboard's time to remediate: one status's newest, read in order without a sort.
            models.Index(fields=["status", "-created_at"], name="investigation_status_new_idx"),
        ]

    def __str__(self) -> str:
        return f"Investigation #{self.pk} — {self.mailbox}"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.ended_at or timezone.now()) - self.started_at


class AnalyzerRun(models.Model):
    """One analyzer's execution in one run of the playbook: start, duration, outcome, error."""

    class Outcome(models.TextChoices):
        OK = "ok", "Completed"
        FAILED = "failed", "Failed"

    investigation = models.ForeignKey(Investigation, on_delete=models.CASCADE, related_name="runs")
    run_number = models.PositiveIntegerField()
    analyzer = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=Outcome)
    findings = models.PositiveIntegerField(default=0)
    summary = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run_number", "started_at", "id"]

    def __str__(self) -> str:
        return f"{self.analyzer} #{self.run_number}: {self.outcome}"


class Finding(models.Model):
    """What an analyzer concluded about one entity; keyed by the entity, so a re-run updates it."""

    class EntityType(models.TextChoices):
        MAILBOX = "mailbox", "Mailbox"
        MAIL_CLUSTER = "mail_cluster", "Mail cluster"
        INBOX_RULE = "inbox_rule", "Inbox rule"
        FORWARDING = "forwarding", "Forwarding"
        DELEGATION = "delegation", "Delegation"
        SIGN_IN = "sign_in", "Sign-in / IP"
        ALERT = "alert", "Alert"
        SENDING = "sending", "Sending activity"
        SENT_MAIL = "sent_mail", "Sent mail verdicts"

    class Verdict(models.TextChoices):
        MALICIOUS = "malicious", "Malicious"
        SUSPICIOUS = "suspicious", "Suspicious"
        CLEAN = "clean", "Clean"

    investigation = models.ForeignKey(Investigation, on_delete=models.CASCADE, related_name="findings")
    analyzer = models.CharField(max_length=64)
    entity_type = models.CharField(max_length=32, choices=EntityType)
    entity_key = models.CharField(max_length=300)
    entity_label = models.CharField(max_length=500)
    verdict = models.CharField(max_length=16, choices=Verdict)
    reasons = models.JSONField(default=list)
    # Links to the rows behind the finding: event ids, rule id, alert ids, cluster id ...
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["entity_type", "entity_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["investigation", "entity_type", "entity_key"], name="one_finding_per_entity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_entity_type_display()} {self.entity_label}: {self.verdict}"


class MailCluster(models.Model):
    """The user's sent mail grouped by subject / URL / body fingerprint, with recipient counts, a verdict."""

    investigation = models.ForeignKey(Investigation, on_delete=models.CASCADE, related_name="clusters")
    fingerprint = models.CharField(max_length=128)
    basis = models.CharField(max_length=16)  # "url", "body", "subject"
    label = models.CharField(max_length=500)
    verdict = models.CharField(max_length=16, choices=Finding.Verdict)
    message_count = models.PositiveIntegerField()
    internal_recipients = models.PositiveIntegerField()
    external_recipients = models.PositiveIntegerField()
    verdict_counts = models.JSONField(default=dict)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    event_ids = models.JSONField(default=list)
    # Why the verdict (one line each), and the recipients it had inside a sending-limit breach window.
    reasons = models.JSONField(default=list, blank=True)
    breach_recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-message_count"]
        constraints = [
            models.UniqueConstraint(
                fields=["investigation", "fingerprint"], name="one_cluster_per_fingerprint"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.message_count})"


class RemediationActionQuerySet(models.QuerySet):
    def open(self) -> RemediationActionQuerySet:
        return self.filter(status__in=RemediationAction.OPEN_STATUSES)

    def pending(self, now: datetime | None = None) -> RemediationActionQuerySet:
        """Pending and still decidable: a Pending row past its expiry reads as Expired (see ``overdue``)."""
        return self.filter(status=RemediationAction.Status.PENDING, expires_at__gt=now or timezone.now())

    def overdue(self, now: datetime | None = None) -> RemediationActionQuerySet:
        """Pending rows past their expiry that beat has not marked Expired yet: Expired wherever read."""
        return self.filter(status=RemediationAction.Status.PENDING, expires_at__lte=now or timezone.now())

    def with_effective_status(self, now: datetime | None = None) -> RemediationActionQuerySet:
        """Annotate ``effective_status``: the status as read now (overdue Pending → Expired), for filters."""
        return self.annotate(
            effective_status=models.Case(
                models.When(
                    status=RemediationAction.Status.PENDING,
                    expires_at__lte=now or timezone.now(),
                    then=models.Value(RemediationAction.Status.EXPIRED),
                ),
                default=models.F("status"),
                output_field=models.CharField(),
            )
        )

    def with_related(self) -> RemediationActionQuerySet:
        return self.select_related("investigation__mailbox", "tenant", "finding", "decided_by")


class RemediationAction(models.Model):
    """A proposed clean-up step; a person decides, a worker executes it through the tenant's connector."""

    class Type(models.TextChoices):
        SOFT_DELETE_MESSAGES = "soft_delete_messages", "Soft delete messages"
        TURN_OFF_FORWARDING = "turn_off_forwarding", "Turn off forwarding"
        REMOVE_INBOX_RULE = "remove_inbox_rule", "Remove inbox rule"
        REMOVE_DELEGATION = "remove_delegation", "Remove delegation"
        FORCE_PASSWORD_RESET = "force_password_reset", "Force password reset"
        REVOKE_SESSIONS = "revoke_sessions", "Revoke sessions"
        DISABLE_ACCOUNT = "disable_account", "Disable account"
        BLOCK_SENDER = "block_sender", "Block sender"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        MANUAL = "manual", "Manual step required"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        UNDONE = "undone", "Undone"

    OPEN_STATUSES = (Status.PENDING, Status.APPROVED, Status.RUNNING, Status.MANUAL)
    REVERSIBLE = (
        Type.SOFT_DELETE_MESSAGES,
        Type.TURN_OFF_FORWARDING,
        Type.REMOVE_INBOX_RULE,
        Type.REMOVE_DELEGATION,
        Type.DISABLE_ACCOUNT,
    )

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    investigation = models.ForeignKey(Investigation, on_delete=models.CASCADE, related_name="actions")
    finding = models.ForeignKey(
        Finding, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    action_type = models.CharField(max_length=32, choices=Type)
    # What it acts on, as plain values (mailbox id, rule id, delegate address, cluster id ...).
    target = models.JSONField(default=dict)
    target_label = models.CharField(max_length=500)
    # One proposal per (investigation, type, target): re-runs do not duplicate it.
    target_key = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING, db_index=True)
    proposed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    running_since = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    result = models.TextField(blank=True)
    manual_step = models.TextField(blank=True)
    prior_state = models.JSONField(null=True, blank=True)
    # The platform calls a connector made for this action (method, URL, status, request id, error), in order.
    connector_calls = models.JSONField(default=list, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undone_at = models.DateTimeField(null=True, blank=True)
    # When the next execution attempt is due (set on approval and after a transient connector error); the
    # reaper re-enqueues an Approved action that no worker picked up within a lease of this time.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    objects = RemediationActionQuerySet.as_manager()

    class Meta:
        ordering = ["proposed_at", "id"]
        permissions = [
            ("decide_action", "Can approve or reject remediation actions"),
            ("undo_action", "Can undo a completed remediation action"),
        ]
        constraints = [
            # One *open* proposal per target; a target may have older decided ones (rejected, undone ...).
            models.UniqueConstraint(
                fields=["investigation", "action_type", "target_key"],
                condition=models.Q(status__in=["pending", "approved", "running", "manual"]),
                name="one_open_action_per_target",
            )
        ]
        indexes = [
            models.Index(fields=["status", "running_since"]),
            models.Index(fields=["status", "expires_at"]),
            # The action center's Pending queue, newest first, without sorting every pending action.
            models.Index(
                fields=["-proposed_at", "-id"],
                condition=models.Q(status="pending"),
                name="action_pending_recent_idx",
            ),
            # An investigation's last completion as one index-only probe (the dashboard's time to remediate).
            models.Index(fields=["investigation", "completed_at"], name="action_investigation_done_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_type_display()}: {self.target_label}"

    @property
    def is_reversible(self) -> bool:
        return self.action_type in self.REVERSIBLE

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Pending past its expiry: it can no longer be decided, whether or not beat has marked it yet."""
        return self.status == self.Status.PENDING and self.expires_at <= (now or timezone.now())

    @property
    def effective_status(self) -> str:
        """The status as it reads now: a Pending action past its expiry is Expired, with or without beat."""
        return self.Status.EXPIRED if self.is_overdue() else self.status

    def get_effective_status_display(self) -> str:
        return self.Status(self.effective_status).label

    def undo_refusal(self) -> str | None:
        """Why this action cannot be undone, or None when it can (the one place this rule lives)."""
        if self.action_type == self.Type.BLOCK_SENDER:
            return "A blocked sender is released by an administrator in Restricted Users, not undone here."
        if not self.is_reversible:
            return f"“{self.get_action_type_display()}” cannot be undone."
        if self.status != self.Status.COMPLETED:
            return f"Only a completed action can be undone; this one is {self.get_status_display().lower()}."
        if self.prior_state is None:
            return "This action found nothing to change (it was already done), so there is nothing to undo."
        return None

    @property
    def is_undoable(self) -> bool:
        """Completed, reversible, and it changed something (an "already done" action has no prior state)."""
        return self.undo_refusal() is None


class SoftDeletedMessageQuerySet(models.QuerySet):
    def active(self) -> SoftDeletedMessageQuerySet:
        """Copies still deleted (not restored by an undo)."""
        return self.filter(restored_at__isnull=True)


class SoftDeletedMessage(models.Model):
    """One copy of a sent message (event id, internal recipient) soft-deleted from the recipient's mailbox by
    a ``soft_delete_messages`` action under the built-in connector; an undo restores it (``restored_at``).

    At most one *active* row per (tenant, event id, recipient): a copy is deleted once, by one action.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    action = models.ForeignKey(
        RemediationAction, on_delete=models.CASCADE, related_name="soft_deleted_messages"
    )
    event_id = models.CharField(max_length=200)
    recipient = models.CharField(max_length=320)
    deleted_at = models.DateTimeField(default=timezone.now)
    restored_at = models.DateTimeField(null=True, blank=True)

    objects = SoftDeletedMessageQuerySet.as_manager()

    class Meta:
        ordering = ["event_id", "recipient"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "event_id", "recipient"],
                condition=models.Q(restored_at__isnull=True),
                name="one_active_soft_delete_per_copy",
            )
        ]
        indexes = [models.Index(fields=["action", "restored_at"])]

    def __str__(self) -> str:
        state = "restored" if self.restored_at else "deleted"
        return f"{self.event_id} for {self.recipient} ({state})"
