"""What a decision needs besides Redis, read from the database into memory (DESIGN section 9).

:func:`load_snapshot` runs in a worker thread (at start, then every minute): it is the only part of the policy
service that touches the ORM. A :class:`Snapshot` is immutable, so the event loop reads it without locks and a
refresh swaps it whole.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.utils import timezone

from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies
from core.models import Tenant
from mailboxes.models import AcceptedDomain, Mailbox
from mailflow.ratewindow import SendingLimits
from restricted_users.models import Restriction
from restricted_users.services import utc_midnight_before

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Override:
    """A per-mailbox override of the sending-limit thresholds, until ``expires_at`` (None: no expiry)."""

    thresholds: dict[str, int]
    expires_at: datetime | None


@dataclass(frozen=True)
class Release:
    """The newest release today of a mailbox's restriction, and the policies whose restrictions ended so."""

    at: datetime
    policy_names: frozenset[str]


@dataclass(frozen=True)
class Snapshot:
    """The tenant's sending-limit policy, accepted domains, SASL login table and today's releases."""

    tenant_id: int
    tenant_slug: str
    policy_name: str = ""
    enabled: bool = False
    action: str = AlertPolicy.Action.ALERT_ONLY
    rerestrict_after_release: bool = False
    thresholds: dict[str, int] = field(default_factory=dict)
    scope: str = AlertPolicy.Scope.ALL
    include_mailboxes: frozenset[str] = frozenset()
    include_departments: frozenset[str] = frozenset()
    exclude_mailboxes: frozenset[str] = frozenset()
    exclude_departments: frozenset[str] = frozenset()
    overrides: dict[str, Override] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)
    accepted_domains: frozenset[str] = frozenset()
    logins: dict[str, str] = field(default_factory=dict)
    releases: dict[str, Release] = field(default_factory=dict)
    day_start: datetime | None = None
    loaded_at: datetime | None = None

    @property
    def restricts(self) -> bool:
        """Whether a breach restricts (the policy is on and its action is a restriction)."""
        return self.enabled and self.action != AlertPolicy.Action.ALERT_ONLY

    def covers(self, address: str) -> bool:
        """The policy's scope (exclusions win), as :meth:`AlertPolicy.covers`."""
        department = self.departments.get(address, "").lower()
        if address in self.exclude_mailboxes or (department and department in self.exclude_departments):
            return False
        if self.scope == AlertPolicy.Scope.ALL:
            return True
        return address in self.include_mailboxes or bool(
            department and department in self.include_departments
        )

    @cached_property
    def policy_limits(self) -> SendingLimits:
        """The policy's thresholds (built once per snapshot: every counted message needs them)."""
        return SendingLimits.from_thresholds(self.thresholds)

    def limits_for(self, address: str, now: datetime) -> SendingLimits:
        """The thresholds in force for a mailbox now: the policy's, with an unexpired override on top."""
        override = self.overrides.get(address)
        if override is None or (override.expires_at is not None and override.expires_at <= now):
            return self.policy_limits
        return SendingLimits.from_thresholds({**self.thresholds, **override.thresholds})

    def is_internal(self, address: str) -> bool:
        return address.rpartition("@")[2] in self.accepted_domains

    def mailbox_for_login(self, login: str) -> str:
        """The mailbox a SASL login sends as: the login when it is an address, else the table's entry."""
        login = login.strip().lower()
        if "@" in login:
            return login
        return self.logins.get(login, "")


def parse_logins(value: str) -> dict[str, str]:
    """``login=address,login2=address2`` (the ``ENFORCEMENT_SASL_LOGINS`` setting) as a dict."""
    table: dict[str, str] = {}
    for item in value.split(","):
        login, sep, address = item.partition("=")
        if sep and login.strip() and "@" in address:
            table[login.strip().lower()] = address.strip().lower()
    return table


def parse_networks(value: str) -> tuple[Network, ...]:
    """``CIDR,CIDR`` as networks; raises ValueError on a malformed one."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()
    )


def resolve_tenant(slug: str | None) -> Tenant:
    return Tenant.objects.get(slug=slug) if slug else Tenant.objects.default()


def releases_today(tenant: Tenant, now: datetime, *, address: str | None = None) -> dict[str, Release]:
    """Per mailbox address, the newest release since today's 00:00 UTC and the policies it released."""
    rows = (
        Restriction.objects.released()
        .filter(tenant=tenant, released_at__gte=utc_midnight_before(now))
        .values_list("mailbox__address", "released_at", "policy_name")
    )
    if address is not None:
        rows = rows.filter(mailbox__address=address)
    found: dict[str, Release] = {}
    for mailbox_address, released_at, policy_name in rows:
        key = mailbox_address.lower()
        previous = found.get(key)
        at = released_at if previous is None else max(previous.at, released_at)
        names = (previous.policy_names if previous else frozenset()) | {policy_name}
        found[key] = Release(at, names)
    return found


def load_snapshot(tenant_slug: str | None) -> Snapshot:
    """Read everything a decision needs for one tenant (a handful of queries; run it off the event loop)."""
    now = timezone.now()
    tenant = resolve_tenant(tenant_slug)
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    departments: dict[str, str] = {}
    if policy.include_departments or policy.exclude_departments:
        departments = {
            address.lower(): department
            for address, department in Mailbox.objects.for_tenant(tenant)
            .exclude(department="")
            .values_list("address", "department")
        }
    return Snapshot(
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        policy_name=policy.name,
        enabled=policy.enabled,
        action=policy.action,
        rerestrict_after_release=policy.rerestrict_after_release,
        thresholds={key: int(value) for key, value in policy.thresholds.items()},
        scope=policy.scope,
        include_mailboxes=frozenset(a.lower() for a in policy.include_mailboxes),
        include_departments=frozenset(d.lower() for d in policy.include_departments),
        exclude_mailboxes=frozenset(a.lower() for a in policy.exclude_mailboxes),
        exclude_departments=frozenset(d.lower() for d in policy.exclude_departments),
        overrides={
            o.mailbox_address.lower(): Override(dict(o.thresholds), o.expires_at)
            for o in policy.overrides.all()
        },
        departments=departments,
        accepted_domains=frozenset(d.lower() for d in AcceptedDomain.objects.domains_of(tenant)),
        logins=parse_logins(settings.ENFORCEMENT_SASL_LOGINS),
        releases=releases_today(tenant, now),
        day_start=utc_midnight_before(now),
        loaded_at=now,
    )
