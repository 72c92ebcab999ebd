"""Layer 1: the tenant's directory (accepted domains, mailboxes, inbox rules, forwarding, delegations),
sign-ins, and the history of every directory change.

Current-state tables (``InboxRule``, ``MailboxForwarding``, ``Delegation``) hold the newest state by *event
time*: an older event that arrives later is kept in ``DirectoryChange`` but never overwrites newer state.
Removed rules and delegations stay as rows with ``removed_at`` set, so a late, older event cannot bring them
back. All writes go through ``mailboxes.services``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from core.models import TelemetryEvent, Tenant, event_time_unique

from .addresses import domain_of, normalize_address


class AcceptedDomainQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> AcceptedDomainQuerySet:
        return self.filter(tenant=tenant)

    def domains_of(self, tenant: Tenant) -> set[str]:
        """The tenant's accepted domains as a set of lowercased names (one query)."""
        return set(self.filter(tenant=tenant).values_list("domain", flat=True))


class AcceptedDomain(models.Model):
    """A domain whose addresses belong to the tenant: mail to it is *internal*, its senders become mailboxes.

    Declared by ``mailbox`` events, added by an administrator, or set by a connector from the platform's
    verified domains. The name is stored lowercased and is unique per tenant.
    """

    class Source(models.TextChoices):
        DECLARED = "declared", "Declared by mailbox events"
        ADMIN = "admin", "Added by an administrator"
        CONNECTOR = "connector", "Set by a connector"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="accepted_domains")
    domain = models.CharField(max_length=253)
    source = models.CharField(max_length=16, choices=Source, default=Source.DECLARED)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AcceptedDomainQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]
        constraints = [models.UniqueConstraint(fields=["tenant", "domain"], name="accepted_domain_unique")]

    def __str__(self) -> str:
        return self.domain


class MailboxQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> MailboxQuerySet:
        return self.filter(tenant=tenant)

    def for_address(self, address: str) -> MailboxQuerySet:
        """Mailboxes with this address, whatever its case (chain ``for_tenant`` to get one)."""
        return self.filter(address=normalize_address(address))

    def for_addresses(self, addresses: Iterable[str]) -> MailboxQuerySet:
        return self.filter(address__in={normalize_address(a) for a in addresses})

    def vip(self) -> MailboxQuerySet:
        return self.filter(vip=True)


class Mailbox(models.Model):
    """A user mailbox of the tenant: identity, directory attributes and the account state remediation sets.

    Created by a ``mailbox`` event, or on first sight of an address in an accepted domain (message sender, the
    mailbox of a rule / forwarding / delegation, a sign-in user). ``first_seen`` is the earliest event time
    that named it; ``attributes_at`` the event time of the newest ``mailbox`` event applied, so an older event
    arriving later does not overwrite the attributes.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="mailboxes")
    address = models.CharField(max_length=320)
    display_name = models.CharField(max_length=200, blank=True)
    department = models.CharField(max_length=200, blank=True)
    vip = models.BooleanField(default=False)
    first_seen = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    attributes_at = models.DateTimeField(null=True, blank=True)
    # Account state, set by remediation (disable account, force password reset, revoke sessions).
    account_enabled = models.BooleanField(default=True)
    password_reset_required = models.BooleanField(default=False)
    sessions_revoked_at = models.DateTimeField(null=True, blank=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "mailboxes"
        constraints = [models.UniqueConstraint(fields=["tenant", "address"], name="mailbox_address_unique")]
        indexes = [
            models.Index(fields=["tenant", "department"]),
            # Lists sorted by user (the alert queue's "User" column): the first 50 alerts by address without
            # sorting every alert.
            models.Index(fields=["address"], name="mailbox_address_idx"),
            # A list filtered by one user's address (case-insensitive): the planner knows it is one mailbox.
            models.Index(Upper("address"), name="mailbox_address_upper_idx"),
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def domain(self) -> str:
        return domain_of(self.address)


class InboxRuleQuerySet(models.QuerySet):
    def present(self) -> InboxRuleQuerySet:
        """Rules that exist now (not deleted)."""
        return self.filter(removed_at__isnull=True)

    def removed(self) -> InboxRuleQuerySet:
        return self.filter(removed_at__isnull=False)

    def for_mailbox(self, mailbox: Mailbox) -> InboxRuleQuerySet:
        return self.filter(mailbox=mailbox)


class InboxRule(models.Model):
    """The current state of one inbox rule of a mailbox, keyed by the platform's ``rule_id``.

    ``changed_at`` is the event time of the newest change applied; a deleted rule keeps its row with
    ``removed_at`` set (present rules have ``removed_at`` null). ``created_at`` is null when only the rule's
    deletion is known.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="inbox_rules")
    rule_id = models.CharField(max_length=200)
    name = models.CharField(max_length=255, blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = InboxRuleQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox_id", "rule_id"]
        constraints = [models.UniqueConstraint(fields=["mailbox", "rule_id"], name="inbox_rule_unique")]
        indexes = [models.Index(fields=["tenant", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.name or self.rule_id} ({self.mailbox_id})"

    @property
    def is_present(self) -> bool:
        return self.removed_at is None

    def state(self) -> dict:
        """The rule as a JSON-ready dict (what history records)."""
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "conditions": self.conditions,
            "actions": self.actions,
            "enabled": self.enabled,
        }


class MailboxForwardingQuerySet(models.QuerySet):
    def active(self) -> MailboxForwardingQuerySet:
        """Mailboxes that forward now."""
        return self.filter(forward_to__isnull=False)


class MailboxForwarding(models.Model):
    """The current mailbox-level (SMTP) forwarding: one row per mailbox; ``forward_to`` null = off."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="forwarding")
    forward_to = models.CharField(max_length=320, null=True, blank=True)
    keep_copy = models.BooleanField(default=False)
    changed_at = models.DateTimeField()

    objects = MailboxForwardingQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox_id"]

    def __str__(self) -> str:
        return f"{self.mailbox_id} → {self.forward_to or 'off'}"

    def state(self) -> dict:
        return {"forward_to": self.forward_to, "keep_copy": self.keep_copy}


class DelegationQuerySet(models.QuerySet):
    def present(self) -> DelegationQuerySet:
        return self.filter(removed_at__isnull=True)

    def for_mailbox(self, mailbox: Mailbox) -> DelegationQuerySet:
        return self.filter(mailbox=mailbox)


class Delegation(models.Model):
    """The current state of one permission (``access``) on a mailbox granted to ``delegate``.

    One row per (mailbox, delegate, access); a removed one keeps its row with ``removed_at`` set.
    """

    class Access(models.TextChoices):
        FULL_ACCESS = "full_access", "Full access"
        SEND_AS = "send_as", "Send as"
        SEND_ON_BEHALF = "send_on_behalf", "Send on behalf"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="delegations")
    delegate = models.CharField(max_length=320)
    access = models.CharField(max_length=16, choices=Access)
    added_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = DelegationQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox_id", "delegate", "access"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "delegate", "access"], name="delegation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.delegate} {self.access} on {self.mailbox_id}"

    @property
    def is_present(self) -> bool:
        return self.removed_at is None

    def state(self) -> dict:
        return {"delegate": self.delegate, "access": self.access}


class SignInQuerySet(models.QuerySet):
    def for_user(self, mailbox: Mailbox) -> SignInQuerySet:
        return self.filter(mailbox=mailbox)

    def successful(self) -> SignInQuerySet:
        return self.filter(result=SignIn.Result.SUCCESS)

    def between(self, start: datetime, end: datetime) -> SignInQuerySet:
        return self.filter(time__gte=start, time__lte=end)


class SignIn(TelemetryEvent):
    """One sign-in of a user (``sign_in`` event). Append-only telemetry."""

    class ClientApp(models.TextChoices):
        BROWSER = "browser", "Browser"
        IMAP = "imap", "IMAP"
        POP = "pop", "POP"
        SMTP = "smtp", "SMTP AUTH"
        EAS = "eas", "Exchange ActiveSync"
        OTHER = "other", "Other"

    class Result(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    LEGACY_CLIENT_APPS = (ClientApp.IMAP, ClientApp.POP, ClientApp.SMTP)

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sign_ins")
    ip = models.GenericIPAddressField()
    country = models.CharField(max_length=2, blank=True)
    client_app = models.CharField(max_length=16, choices=ClientApp, blank=True)
    result = models.CharField(max_length=16, choices=Result, blank=True)
    user_agent = models.CharField(max_length=1000, blank=True)

    objects = SignInQuerySet.as_manager()

    class Meta(TelemetryEvent.Meta):
        constraints = [event_time_unique("sign_in_event_unique")]
        indexes = [models.Index(fields=["tenant", "mailbox", "time"]), models.Index(fields=["time"])]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.result or '?'} from {self.ip} at {self.time:%Y-%m-%d %H:%M}"


class DirectoryChangeQuerySet(models.QuerySet):
    def for_mailbox(self, mailbox: Mailbox) -> DirectoryChangeQuerySet:
        return self.filter(mailbox=mailbox)

    def of_kind(self, kind: str) -> DirectoryChangeQuerySet:
        return self.filter(kind=kind)

    def timeline(self) -> DirectoryChangeQuerySet:
        """Oldest first, by event time."""
        return self.order_by("at", "id")


class DirectoryChange(models.Model):
    """One change of a mailbox, inbox rule, forwarding or delegation, as it happened (append-only history).

    ``at`` is the event time, ``state`` the full state after the change (for a deletion — rule deleted,
    delegation removed, forwarding turned off — the state that was removed). ``applied`` is false when the
    change was older than the state already held, so it is history only. ``source`` says where it came from:
    an ingest channel (``api``, ``import``, ``simulator``, ``postfix``, ``connector``) or ``console`` for a
    change made here.
    """

    class Kind(models.TextChoices):
        MAILBOX = "mailbox", "Mailbox"
        INBOX_RULE = "inbox_rule", "Inbox rule"
        FORWARDING = "forwarding", "Forwarding"
        DELEGATION = "delegation", "Delegation"

    class Operation(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"
        ADDED = "added", "Added"
        REMOVED = "removed", "Removed"
        SET = "set", "Set"
        CLEARED = "cleared", "Turned off"

    class Source(models.TextChoices):
        API = "api", "Ingest API"
        IMPORT = "import", "import_events"
        SIMULATOR = "simulator", "Simulator"
        POSTFIX = "postfix", "Postfix policy service"
        CONNECTOR = "connector", "Connector"
        CONSOLE = "console", "Console"
        INVESTIGATION = "investigation", "Investigation action"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="directory_changes")
    kind = models.CharField(max_length=16, choices=Kind)
    key = models.CharField(max_length=320, blank=True)
    operation = models.CharField(max_length=16, choices=Operation)
    at = models.DateTimeField()
    state = models.JSONField(default=dict, blank=True)
    applied = models.BooleanField(default=True)
    event_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=32, choices=Source)
    recorded_at = models.DateTimeField(default=timezone.now)

    objects = DirectoryChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "mailbox", "at"]),
            models.Index(fields=["tenant", "kind", "at"]),
            # The retention purge keeps the ingest ledger row of a change still stored (by event id).
            models.Index(fields=["tenant", "event_id"], name="directory_change_event_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.key} {self.operation}"
