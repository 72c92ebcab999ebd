"""Microsoft 365 tenant connections, their pull cursors and pull runs (DESIGN section 2, layer 6).

A connection binds one console :class:`~core.models.Tenant` (connector kind ``m365``) to one Entra ID tenant
and an app registration. Its credential (a client secret, or a certificate's private key) is stored encrypted
(:mod:`m365.crypto`) and never rendered, returned or logged after it was entered.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from core.models import PlatformConnection, Tenant


class Source(models.TextChoices):
    """What a pull reads, one cursor each per connection."""

    DOMAINS = "domains", "Verified domains (Graph /domains)"
    USERS = "users", "Member users with mailboxes (Graph /users)"
    MESSAGE_TRACE = "message_trace", "Sent mail (Graph message trace)"
    SIGN_INS = "sign_ins", "Sign-ins (Graph /auditLogs/signIns)"
    AUDIT_EXCHANGE = "audit_exchange", "Rules, forwarding, permissions (Management Activity Audit.Exchange)"
    INBOX_RULES = "inbox_rules", "Current inbox rules (Graph messageRules)"


class M365Connection(PlatformConnection):
    """One Microsoft 365 tenant the console reads telemetry from and acts in (app-only OAuth2 through MSAL).

    ``credential_ciphertext`` holds the client secret, or the certificate's PEM private key, encrypted with
    the key from ``CONNECTOR_ENCRYPTION_KEYS``; it is write-only for people. ``granted_permissions`` is what
    the last "test connection" found in the app's tokens (Graph and Management API application roles).
    """

    class Credential(models.TextChoices):
        SECRET = "secret", "Client secret"
        CERTIFICATE = "certificate", "Certificate"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="m365_connection")
    directory_id = models.CharField(
        "directory (tenant) ID", max_length=100, help_text="The Entra ID tenant ID (a GUID) or its domain."
    )
    client_id = models.CharField("application (client) ID", max_length=100)
    credential_type = models.CharField(max_length=16, choices=Credential, default=Credential.SECRET)
    credential_ciphertext = models.TextField()
    certificate_thumbprint = models.CharField(max_length=64, blank=True)
    credential_set_at = models.DateTimeField(default=timezone.now)
    # What the last "test connection" found.
    granted_permissions = models.JSONField(default=list, blank=True)
    missing_permissions = models.JSONField(default=list, blank=True)

    class Meta(PlatformConnection.Meta):
        constraints = [
            models.UniqueConstraint(fields=["directory_id"], name="m365_connection_unique_directory"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.name} (Microsoft 365 {self.directory_id})"


class PullCursor(models.Model):
    """Where the pull of one source of one connection stands: resumable, so a restart neither loses nor
    duplicates events.

    ``state`` is the source's own bookmark (a time window and the ``@odata.nextLink`` of the page to read
    next, or the Management API's content page and the content blobs already read). It is saved in the same
    transaction as the events of the page it follows. ``running_since`` is a lease: one pull per cursor at a
    time; a pull whose worker died is taken over once the lease runs out.
    """

    connection = models.ForeignKey(M365Connection, on_delete=models.CASCADE, related_name="cursors")
    source = models.CharField(max_length=32, choices=Source)
    state = models.JSONField(default=dict, blank=True)
    # The event time up to which telemetry is known to be complete (lag = now - watermark).
    watermark = models.DateTimeField(null=True, blank=True)
    running_since = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    events_total = models.PositiveBigIntegerField(default=0)
    rejected_total = models.PositiveBigIntegerField(default=0)
    # Stretches of time the pull could no longer read because an outage outlasted what the API keeps
    # (message trace 90 days, sign-ins 30 days, audit content 7 days): [{"from", "to", "recorded_at"}].
    gaps = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["connection_id", "source"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "source"], name="m365_cursor_unique_source"),
        ]

    def __str__(self) -> str:
        return f"{self.connection} / {self.source}"

    @property
    def lag(self) -> timedelta | None:
        return timezone.now() - self.watermark if self.watermark else None


class PullRun(models.Model):
    """One pull of one source: what it read, stored and rejected, and how the platform behaved."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Succeeded"
        PARTIAL = "partial", "Succeeded with rejected records"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(M365Connection, on_delete=models.CASCADE, related_name="runs")
    source = models.CharField(max_length=32, choices=Source)
    status = models.CharField(max_length=16, choices=Status, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    resumed = models.BooleanField(default=False, help_text="It continued a pull interrupted mid-way.")
    pages = models.PositiveIntegerField(default=0)
    records = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    throttled = models.PositiveIntegerField(default=0)
    # [{"record": id or index, "error": text}], capped; the connector error of a failed run in ``error``.
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["connection", "source", "-started_at"], name="m365_run_recent_idx")]

    def __str__(self) -> str:
        return f"{self.source} pull #{self.pk}"

    @property
    def duration(self) -> timedelta | None:
        return (self.finished_at - self.started_at) if self.finished_at else None


class DirectoryUser(models.Model):
    """A member user of a connected tenant as Graph knows it: its object id and sign-in name (UPN) next to
    the mailbox address the console uses. Sign-ins name users by UPN and Graph actions by id, so both are
    kept; refreshed by every users pull."""

    connection = models.ForeignKey(M365Connection, on_delete=models.CASCADE, related_name="users")
    graph_id = models.CharField(max_length=64)
    user_principal_name = models.CharField(max_length=320)
    address = models.CharField(max_length=320)
    display_name = models.CharField(max_length=300, blank=True)
    account_enabled = models.BooleanField(default=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["address"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "graph_id"], name="m365_user_unique_id"),
        ]
        indexes = [
            models.Index(fields=["connection", "address"], name="m365_user_address_idx"),
            models.Index(fields=["connection", "user_principal_name"], name="m365_user_upn_idx"),
        ]

    def __str__(self) -> str:
        return self.address


class MovedMessage(models.Model):
    """One message copy a ``soft_delete_messages`` action moved to Recoverable Items through Graph. A move
    gives the message a new id (201 with the moved copy), kept here with the folder it came from, so an undo
    can move it back."""

    connection = models.ForeignKey(M365Connection, on_delete=models.CASCADE, related_name="moved_messages")
    action_id = models.PositiveBigIntegerField(db_index=True)
    recipient = models.CharField(max_length=320)
    internet_message_id = models.CharField(max_length=998)
    message_id = models.CharField("id after the move", max_length=400)
    source_folder_id = models.CharField(max_length=400)
    moved_at = models.DateTimeField(default=timezone.now)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["action_id", "recipient", "id"]

    def __str__(self) -> str:
        return f"{self.internet_message_id} of {self.recipient}"
