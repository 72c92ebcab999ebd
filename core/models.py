"""Layer 0: tenants, the append-only audit trail, API tokens, the worker heartbeat, and the outbox and
change feed every app publishes to (:func:`core.services.publish_change`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, ClassVar, NoReturn, TypeVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from .exceptions import AuditIsAppendOnly

DEFAULT_TENANT_SLUG = "default"


class TenantQuerySet(models.QuerySet["Tenant"]):
    def default(self) -> Tenant:
        """The deployment's default tenant, created on first use (it survives database flushes)."""
        tenant, _ = self.get_or_create(
            slug=DEFAULT_TENANT_SLUG, defaults={"name": "Default organisation", "is_default": True}
        )
        return tenant

    def is_single(self) -> bool:
        """True while the deployment watches one organisation: pages leave out tenant columns and filters."""
        return self.count() < 2


class Tenant(models.Model):
    """An organisation whose mailboxes and telemetry the console watches. One default tenant always exists."""

    class ConnectorKind(models.TextChoices):
        BUILTIN = "builtin", "Built-in (console only)"
        M365 = "m365", "Microsoft 365"
        MAILSTACK = "mailstack", "Postfix + Dovecot + Rspamd"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    is_default = models.BooleanField(default=False)
    connector_kind = models.CharField(max_length=32, choices=ConnectorKind, default=ConnectorKind.BUILTIN)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("view_console", "Can open the console")]

    def __str__(self) -> str:
        return self.name


class AppendOnlyModel(models.Model):
    """A table whose rows are written once: saving an existing row or deleting one raises
    :class:`AuditIsAppendOnly` (naming the rows by ``append_only_noun``). Its queryset refuses bulk writes."""

    append_only_noun: ClassVar[str]

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AuditIsAppendOnly(f"{self.append_only_noun} cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditIsAppendOnly(f"{self.append_only_noun} cannot be deleted.")


_AppendOnly = TypeVar("_AppendOnly", bound=AppendOnlyModel)


class AppendOnlyQuerySet(models.QuerySet[_AppendOnly]):
    """The queryset of an :class:`AppendOnlyModel`: bulk ``update()`` and ``delete()`` raise too."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditIsAppendOnly(f"{self.model.append_only_noun} cannot be changed.")

    def delete(self) -> NoReturn:
        raise AuditIsAppendOnly(f"{self.model.append_only_noun} cannot be deleted.")


class AuditEventQuerySet(AppendOnlyQuerySet["AuditEvent"]):
    def for_target(self, obj: models.Model) -> AuditEventQuerySet:
        return self.filter(target_type=obj._meta.label_lower, target_id=str(obj.pk))


class AuditEvent(AppendOnlyModel):
    """One change, by a person or by the system. Append-only: the app never updates or deletes a row."""

    append_only_noun = "Audit events"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who did it, kept as text so the row stays readable after the account is deleted ("system" for workers).
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100, db_index=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_repr}"


class CreatedByPerson(models.Model):
    """Who created the row (null for the system, or once that account is deleted) and when."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class PlatformConnectionQuerySet[C: PlatformConnection](models.QuerySet[C]):
    def enabled(self) -> PlatformConnectionQuerySet[C]:
        return self.filter(enabled=True)

    def enabled_one(self, pk: int) -> C | None:
        """The connection ``pk`` with its tenant; None when it is disabled or gone (the task returns)."""
        return self.enabled().select_related("tenant").filter(pk=pk).first()


class PlatformConnection(CreatedByPerson):
    """A tenant's connection to its mail platform (Microsoft 365, self-hosted servers), one per tenant: on or
    off, and what its last "Test" found."""

    enabled = models.BooleanField(default=True)
    tested_at = models.DateTimeField(null=True, blank=True)
    test_ok = models.BooleanField(null=True)
    test_message = models.TextField(blank=True)

    objects = PlatformConnectionQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["tenant__name"]


class TelemetryEvent(models.Model):
    """An ingested event row (a sign-in, a message, the ledger's entry of any event): the tenant's event id,
    the event time, and when it arrived. Newest first.

    The tables are partitioned by the event time on PostgreSQL (:mod:`core.partitions`), and a unique key
    must hold the partition key: :func:`event_time_unique` is (tenant, event id, time). The ingest ledger is
    what makes an id unique per tenant (``mailflow.staging`` finds an id stored at another time)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=200)
    time = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["-time", "-id"]


def event_time_unique(name: str) -> models.UniqueConstraint:
    """The unique key of a :class:`TelemetryEvent` table (see there why it holds the time)."""
    return models.UniqueConstraint(fields=["tenant", "event_id", "time"], name=name)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def authenticate(self, raw: str) -> ApiToken | None:
        """The active token matching ``raw`` (constant-time comparison of the hash), else None."""
        parts = raw.split("_")
        if len(parts) != 3 or parts[0] != "soc":
            return None
        digest = hash_token(raw)
        for token in self.active().select_related("tenant").filter(prefix=parts[1]):
            if hmac.compare_digest(token.key_hash, digest):
                return token
        return None


class ApiToken(CreatedByPerson):
    """A credential for an integration, bound to one tenant. Only its SHA-256 is stored; it is shown once."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest only (write events, read nothing)"
        READ = "read", "Read (API reads of its tenant)"

    name = models.CharField(max_length=100)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    scope = models.CharField(max_length=16, choices=Scope, default=Scope.INGEST)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (soc_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new raw token and its lookup prefix."""
        prefix = secrets.token_hex(4)
        return f"soc_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}", prefix


class Heartbeat(models.Model):
    """When a periodic process (beat, a worker) last proved it was alive; read by /healthz."""

    name = models.CharField(max_length=64, primary_key=True)
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"


class ChangeFeedQuerySet(AppendOnlyQuerySet["ChangeFeedEntry"]):
    def sequenced(self) -> ChangeFeedQuerySet:
        """Entries the feed may serve: those given their commit-ordered position, in that order."""
        return self.filter(position__isnull=False).order_by("position")


class ChangeFeedEntry(AppendOnlyModel):
    """One change a person or a SIEM should hear about (an alert raised, a restriction placed, ...).

    Append-only: written once by :func:`core.services.publish_change` in the transaction of the change; the
    app never edits its content. ``id`` is the row's identity; ``position`` is the feed cursor, given after
    commit by :func:`core.services.sequence_changes` in commit order (see its docstring), so a reader paging
    by position never skips a row whose transaction committed after a higher-id one.

    The document a consumer sees (:meth:`as_document`) has one schema for every kind::

        {"schema": 1, "id": 41, "kind": "alert.raised", "at": "2026-11-23T12:00:00+00:00",
         "tenant": "default", "target": {"type": "alerts.alert", "id": "7"}, "data": {...kind-specific}}
    """

    SCHEMA_VERSION = 1
    append_only_noun = "Change-feed entries"

    kind = models.CharField(max_length=64, db_index=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)
    position = models.BigIntegerField(null=True, blank=True, unique=True)

    objects = ChangeFeedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "change feed entries"
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(position__isnull=True), name="changefeed_unsequenced"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.target_type}:{self.target_id}"

    def as_document(self, tenant_slug: str | None = None) -> dict:
        """The entry as the feed, webhooks and the outbox carry it (one documented schema)."""
        if tenant_slug is None and self.tenant is not None:
            tenant_slug = self.tenant.slug
        return {
            "schema": self.SCHEMA_VERSION,
            "id": self.pk,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "tenant": tenant_slug,
            "target": {"type": self.target_type, "id": self.target_id},
            "data": self.payload,
        }


class OutboxMessageQuerySet(models.QuerySet):
    def pending(self) -> OutboxMessageQuerySet:
        return self.filter(state=OutboxMessage.State.PENDING)


class OutboxMessage(models.Model):
    """A change waiting to be sent (email, webhooks) by ``notifications.dispatch``.

    Written with its change-feed entry in the transaction of the change, so a rolled-back change sends
    nothing and a committed one is sent even if the broker was down at commit (beat picks up pending rows).
    The dispatcher claims rows with ``select_for_update(skip_locked=True)`` and marks them dispatched once
    their deliveries exist; it never sends from inside the claim.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DISPATCHED = "dispatched", "Dispatched"

    kind = models.CharField(max_length=64)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    change = models.OneToOneField(ChangeFeedEntry, on_delete=models.PROTECT, related_name="outbox")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State, default=State.PENDING)

    objects = OutboxMessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=models.Q(state="pending"), name="outbox_pending"),
        ]

    def __str__(self) -> str:
        return f"outbox #{self.pk} {self.kind} ({self.state})"
