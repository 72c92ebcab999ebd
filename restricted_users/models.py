"""Restrictions: a user barred from sending mail (DESIGN section 5): why, by whom, until when, its release.

Whether a user is restricted is computed by comparing ``expires_at`` with now
(``Restriction.objects.active()``), so a restriction ends at its expiry without any periodic job; beat only
closes ended rows (``closed_at``) and pushes the state to Redis. At most one row per mailbox is *open*
(``closed_at`` is null): a partial unique constraint.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import Tenant

if TYPE_CHECKING:
    from mailboxes.models import Mailbox

# The release checklist (DESIGN section 5), in the order the console shows it.
CHECKLIST_ITEMS: dict[str, str] = {
    "password_reset": "Password reset",
    "mfa_enforced": "MFA enforced",
    "sessions_revoked": "Sessions revoked",
    "forwarding_rules_delegates_reviewed": "Forwarding, inbox rules and delegates reviewed",
}


class RestrictionQuerySet(models.QuerySet):
    def active(self, now: datetime | None = None) -> RestrictionQuerySet:
        """Restrictions in force at ``now``: not closed, not released, and not past their expiry."""
        now = now or timezone.now()
        return self.filter(closed_at__isnull=True, released_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def expired(self, now: datetime | None = None) -> RestrictionQuerySet:
        """Restrictions that ended by reaching their expiry (whether or not beat has closed them yet)."""
        return self.filter(released_at__isnull=True, expires_at__lte=now or timezone.now())

    def released(self) -> RestrictionQuerySet:
        return self.filter(released_at__isnull=False)

    def open(self) -> RestrictionQuerySet:
        """Rows not closed yet: the one row per mailbox the constraint allows (maybe already expired)."""
        return self.filter(closed_at__isnull=True)

    def for_mailbox(self, mailbox: Mailbox) -> RestrictionQuerySet:
        return self.filter(mailbox=mailbox)

    def with_related(self) -> RestrictionQuerySet:
        return self.select_related("tenant", "mailbox", "placed_by", "released_by")


class Restriction(models.Model):
    """One period during which a mailbox may not send mail.

    It holds its reason as plain values (the policy's name, the limit, the counts and the window), never a
    reference to a higher-layer object: an alert points to the restriction it caused, not the other way round.
    ``expires_at`` is None for "until released". A restriction ends when it is released (``released_at``) or
    when its expiry passes; ``closed_at`` records that the row has been seen ended, which frees the mailbox's
    single open slot.
    """

    class Source(models.TextChoices):
        POLICY = "policy", "Alert policy"
        POLICY_SERVICE = "policy_service", "Postfix policy service"
        MANUAL = "manual", "By hand"
        INVESTIGATION = "investigation", "Investigation (block sender)"

    class State(models.TextChoices):
        ACTIVE = "active", "Restricted"
        EXPIRED = "expired", "Expired"
        RELEASED = "released", "Released"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="restrictions")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="restrictions")
    policy_name = models.CharField(max_length=200)
    source = models.CharField(max_length=32, choices=Source)
    reason = models.JSONField(default=dict, blank=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who or what placed it, kept as text ("policy: Email sending limit exceeded", a username, "system").
    placed_by_label = models.CharField(max_length=200)
    placed_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True, db_index=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_reason = models.TextField(blank=True)
    release_override_reason = models.TextField(blank=True)
    release_flagged = models.BooleanField(default=False)
    # Item -> {"state": "auto"|"attested", "source"|"by": …, "at": ISO time}, filled in at release.
    checklist = models.JSONField(default=dict, blank=True)

    objects = RestrictionQuerySet.as_manager()

    class Meta:
        ordering = ["-placed_at", "-id"]
        permissions = [("release_restriction", "Can release a restricted user")]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox"],
                condition=Q(closed_at__isnull=True),
                name="one_open_restriction_per_mailbox",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "closed_at"]),
            models.Index(fields=["mailbox", "released_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox} restricted at {self.placed_at:%Y-%m-%d %H:%M} ({self.policy_name})"

    def state_at(self, now: datetime | None = None) -> str:
        """Active, expired or released at ``now``; the same rule as the QuerySet methods."""
        if self.released_at is not None:
            return self.State.RELEASED
        if self.closed_at is not None or (
            self.expires_at is not None and self.expires_at <= (now or timezone.now())
        ):
            return self.State.EXPIRED
        return self.State.ACTIVE

    @property
    def state(self) -> str:
        return self.state_at()

    def get_state_display(self) -> str:
        return self.State(self.state).label

    def is_active(self, now: datetime | None = None) -> bool:
        return self.state_at(now) == self.State.ACTIVE

    @property
    def ended_at(self) -> datetime | None:
        """When the restriction stopped applying: its release, else its expiry once past, else None."""
        if self.released_at is not None:
            return self.released_at
        if self.state == self.State.EXPIRED:
            return self.expires_at or self.closed_at
        return None
