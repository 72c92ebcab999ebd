"""Writes of restricted_users: placing a restriction (by a policy, the policy service, an investigation or by
hand), releasing it, tidying ended rows and pushing the state to Redis (DESIGN sections 5 and 9).

Every change is atomic and writes its audit row in the same transaction. The mailbox row is the lock for
anything that changes a mailbox's restrictions, so two concurrent callers place one restriction. Redis is
written only after the commit (re-read from the database then), so it never shows a rolled-back restriction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import Tenant
from core.queueing import enqueue_on_commit
from core.services import SYSTEM_ACTOR, publish_change, record_audit
from mailboxes.models import Delegation, InboxRule, Mailbox, MailboxForwarding

from . import state
from .exceptions import (
    ChecklistIncomplete,
    OverrideRequired,
    RestrictionError,
    RestrictionPermissionError,
)
from .models import CHECKLIST_ITEMS, Restriction

logger = logging.getLogger(__name__)

MANUAL_POLICY_NAME = "Manual restriction"
RELEASE_PERMISSION = "restricted_users.release_restriction"
RESTRICT_PERMISSION = "restricted_users.add_restriction"


# ------------------------------------------------------------------------------------------------ time


def utc_midnight_before(now: datetime) -> datetime:
    """Today's 00:00 UTC (the start of the UTC day containing ``now``)."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_utc_midnight(now: datetime) -> datetime:
    """The next 00:00 UTC strictly after ``now``: the expiry of a "restrict until next day" restriction."""
    return utc_midnight_before(now) + timedelta(days=1)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _snapshot(restriction: Restriction) -> dict:
    """The fields an audit row records before / after a change."""
    return {
        "state": restriction.state,
        "policy_name": restriction.policy_name,
        "source": restriction.source,
        "expires_at": _iso(restriction.expires_at),
        "closed_at": _iso(restriction.closed_at),
        "released_at": _iso(restriction.released_at),
    }


# ------------------------------------------------------------------------------------------------ placing


def restrict_user(
    mailbox: Mailbox,
    *,
    policy_name: str,
    reason: dict,
    expires_at: datetime | None,
    source: str,
    actor: User | None = None,
    actor_label: str = "",
) -> tuple[Restriction, bool]:
    """Restrict a user from sending; idempotent: at most one active restriction per mailbox.

    Returns ``(restriction, created)``. When the mailbox is already restricted the active row is returned with
    False; a request that lasts longer (e.g. "until released" over "until next day") extends it, audited. An
    open row whose expiry has passed is closed first. ``expires_at`` None means until released. On commit the
    Redis key is written and ``alerts.restriction_placed`` is enqueued by name (a higher layer).
    """
    if source not in Restriction.Source.values:
        raise RestrictionError(f"Unknown restriction source {source!r}.")
    policy_name = policy_name.strip()
    if not policy_name:
        raise RestrictionError("A restriction needs the name of what placed it.")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise RestrictionError("A restriction's expiry must be in the future.")
    if actor is not None and not actor.is_authenticated:
        actor = None
    label = actor.get_username() if actor is not None else (actor_label or SYSTEM_ACTOR)

    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=mailbox.pk)
        current = Restriction.objects.select_for_update().open().for_mailbox(mailbox).first()
        if current is not None and current.is_active(now):
            if current.expires_at is not None and (expires_at is None or expires_at > current.expires_at):
                _extend(current, expires_at, actor=actor, actor_label=label, policy_name=policy_name)
            return current, False
        if current is not None:
            _close_expired(current)
        try:
            with transaction.atomic():
                restriction = Restriction.objects.create(
                    tenant=mailbox.tenant,
                    mailbox=mailbox,
                    policy_name=policy_name,
                    source=source,
                    reason=reason,
                    placed_by=actor,
                    placed_by_label=label[:200],
                    placed_at=now,
                    expires_at=expires_at,
                )
        except IntegrityError:
            # Only reachable where row locks are not enforced (SQLite): another writer placed it first.
            return Restriction.objects.open().for_mailbox(mailbox).get(), False
        record_audit(
            "restricted_users.restriction.placed",
            target=restriction,
            actor=actor,
            actor_label=label,
            after={**_snapshot(restriction), "reason": reason},
        )
        publish_change(
            "restriction.placed",
            target=restriction,
            payload={**_snapshot(restriction), "user": mailbox.address, "reason": reason, "placed_by": label},
        )
        restriction_id, mailbox_id = restriction.pk, mailbox.pk
        transaction.on_commit(lambda: refresh_redis_key(mailbox_id))
        enqueue_on_commit("incidents.correlate_restriction", restriction_id)
        enqueue_on_commit("alerts.restriction_placed", restriction_id)
    return restriction, True


def _extend(
    restriction: Restriction,
    expires_at: datetime | None,
    *,
    actor: User | None,
    actor_label: str,
    policy_name: str,
) -> None:
    before = _snapshot(restriction)
    restriction.expires_at = expires_at
    restriction.save(update_fields=["expires_at"])
    record_audit(
        "restricted_users.restriction.extended",
        target=restriction,
        actor=actor,
        actor_label=actor_label,
        before=before,
        after=_snapshot(restriction),
        comment=f"Restricted again by {policy_name}",
    )
    publish_change(
        "restriction.extended",
        target=restriction,
        payload={**_snapshot(restriction), "user": restriction.mailbox.address, "by": policy_name},
    )
    mailbox_id = restriction.mailbox_id
    transaction.on_commit(lambda: refresh_redis_key(mailbox_id))


def _close_expired(restriction: Restriction) -> None:
    """Close an open row whose expiry has passed (it ended at its expiry, not now). Audited as the system."""
    before = _snapshot(restriction)
    restriction.closed_at = restriction.expires_at
    restriction.save(update_fields=["closed_at"])
    record_audit(
        "restricted_users.restriction.expired",
        target=restriction,
        actor_label=SYSTEM_ACTOR,
        before=before,
        after=_snapshot(restriction),
    )
    publish_change(
        "restriction.expired",
        target=restriction,
        payload={**_snapshot(restriction), "user": restriction.mailbox.address},
    )


def restrict_by_hand(
    mailbox: Mailbox, *, actor: User, reason_text: str, until_released: bool = True
) -> tuple[Restriction, bool]:
    """An administrator restricts a user (with a reason): until released, or until the next 00:00 UTC."""
    if not actor.has_perm(RESTRICT_PERMISSION):
        raise RestrictionPermissionError("Only security administrators may restrict a user by hand.")
    reason_text = reason_text.strip()
    if not reason_text:
        raise RestrictionError("Give a reason for restricting this user.")
    return restrict_user(
        mailbox,
        policy_name=MANUAL_POLICY_NAME,
        reason={"text": reason_text},
        expires_at=None if until_released else next_utc_midnight(timezone.now()),
        source=Restriction.Source.MANUAL,
        actor=actor,
    )


def released_since(mailbox: Mailbox, since: datetime, *, policy_name: str | None = None) -> bool:
    """Whether a restriction of the mailbox (of that policy, if given) was released at or after ``since``."""
    released = Restriction.objects.released().for_mailbox(mailbox).filter(released_at__gte=since)
    if policy_name is not None:
        released = released.filter(policy_name=policy_name)
    return released.exists()


# ------------------------------------------------------------------------------------------------ release

# Sources of automatic checklist ticks registered by higher layers (investigations registers one from its
# AppConfig.ready: completed remediation actions), so this app never imports them.
ChecklistSource = Callable[[Restriction], dict[str, str]]
_checklist_sources: list[ChecklistSource] = []


def register_checklist_source(source: ChecklistSource) -> None:
    """Add a function ``restriction -> {item: how it is proven}`` read by :func:`checklist_auto_ticks`."""
    if source not in _checklist_sources:
        _checklist_sources.append(source)


def _directory_ticks(restriction: Restriction) -> dict[str, str]:
    """What the mailbox's directory state proves since the restriction was placed. Account-state fields are
    read defensively: a directory (or connector) may not track them."""
    mailbox = restriction.mailbox
    placed_at = restriction.placed_at
    ticks: dict[str, str] = {}
    reset_at = getattr(mailbox, "password_reset_at", None)
    if getattr(mailbox, "password_reset_required", False) is True:
        ticks["password_reset"] = "Directory: a new password is required at next sign-in"  # noqa: S105
    elif isinstance(reset_at, datetime) and reset_at >= placed_at:
        ticks["password_reset"] = f"Directory: password reset at {reset_at:%Y-%m-%d %H:%M} UTC"
    if getattr(mailbox, "mfa_enforced", False) is True:
        ticks["mfa_enforced"] = "Directory: MFA is enforced"
    revoked_at = getattr(mailbox, "sessions_revoked_at", None)
    if isinstance(revoked_at, datetime) and revoked_at >= placed_at:
        ticks["sessions_revoked"] = f"Directory: sessions revoked at {revoked_at:%Y-%m-%d %H:%M} UTC"
    if not (
        MailboxForwarding.objects.active().filter(mailbox=mailbox).exists()
        or InboxRule.objects.present().for_mailbox(mailbox).exists()
        or Delegation.objects.present().for_mailbox(mailbox).exists()
    ):
        ticks["forwarding_rules_delegates_reviewed"] = (
            "Directory: the mailbox has no forwarding, inbox rule or delegate left to review"
        )
    return ticks


def checklist_auto_ticks(restriction: Restriction) -> dict[str, str]:
    """The release checklist items already proven, each with a sentence saying how.

    Today that is what the directory state proves (a password reset required or done, MFA enforced, sessions
    revoked after the restriction was placed, nothing left to review: no forwarding, inbox rule or delegate).
    The investigations app feeds it the completed remediation actions through
    :func:`register_checklist_source`. Items absent here must be attested by hand at release.
    """
    ticks = _directory_ticks(restriction)
    for source in _checklist_sources:
        for item, proof in source(restriction).items():
            if item in CHECKLIST_ITEMS:
                ticks.setdefault(item, proof)
    return ticks


def releases_within_cap_window(mailbox: Mailbox, now: datetime | None = None) -> int:
    """How many restrictions of the mailbox were released in the last ``RELEASE_CAP_DAYS``."""
    since = (now or timezone.now()) - timedelta(days=settings.RELEASE_CAP_DAYS)
    return Restriction.objects.released().for_mailbox(mailbox).filter(released_at__gte=since).count()


def past_release_cap(releases_in_window: int) -> bool:
    """The release cap rule, in one place: after ``RELEASE_CAP_COUNT`` releases within ``RELEASE_CAP_DAYS``
    (:func:`releases_within_cap_window`), another release needs an override reason and is flagged."""
    return releases_in_window >= settings.RELEASE_CAP_COUNT


@dataclass(frozen=True)
class ReleasePlan:
    """What a release would record: the filled-in checklist and whether it is past the cap (flagged)."""

    checklist: dict[str, dict]
    releases_in_window: int
    past_cap: bool


def plan_release(
    restriction: Restriction,
    *,
    actor: User,
    reason: str,
    attestations: dict[str, bool],
    override_reason: str = "",
    resolve_alerts: bool = True,
    keep_alerts_reason: str = "",
    now: datetime | None = None,
) -> ReleasePlan:
    """Check a release without writing anything (the console's confirmation step, and :func:`release_user`).

    Raises a :class:`RestrictionError` subclass for anything that would refuse the release.
    """
    now = now or timezone.now()
    if not actor.has_perm(RELEASE_PERMISSION):
        raise RestrictionPermissionError("Only security administrators may release a restricted user.")
    current = restriction.state_at(now)
    if current == Restriction.State.RELEASED:
        raise RestrictionError("This restriction has already been released.")
    if current == Restriction.State.EXPIRED:
        raise RestrictionError("This restriction has already expired: the user can send again.")
    if not reason.strip():
        raise RestrictionError("Give a reason for releasing this user.")
    if not resolve_alerts and not keep_alerts_reason.strip():
        raise RestrictionError(
            "Say why the user's “User restricted from sending email” alerts stay open after the release."
        )
    unknown = sorted(set(attestations) - set(CHECKLIST_ITEMS))
    if unknown:
        raise RestrictionError(f"Unknown checklist item(s): {', '.join(unknown)}.")
    auto = checklist_auto_ticks(restriction)
    checklist: dict[str, dict] = {}
    missing: list[str] = []
    for item, label in CHECKLIST_ITEMS.items():
        if item in auto:
            checklist[item] = {"state": "auto", "source": auto[item], "at": now.isoformat()}
        elif attestations.get(item) is True:
            checklist[item] = {"state": "attested", "by": actor.get_username(), "at": now.isoformat()}
        else:
            missing.append(label)
    if missing:
        raise ChecklistIncomplete(
            f"Confirm every checklist item before releasing; missing: {', '.join(missing)}."
        )
    count = releases_within_cap_window(restriction.mailbox, now)
    past_cap = past_release_cap(count)
    if past_cap and not override_reason.strip():
        raise OverrideRequired(
            f"This account was released {count} times in the last {settings.RELEASE_CAP_DAYS} days "
            f"(the cap is {settings.RELEASE_CAP_COUNT}): give an override reason. The release is flagged."
        )
    return ReleasePlan(checklist=checklist, releases_in_window=count, past_cap=past_cap)


def release_user(
    restriction: Restriction,
    *,
    actor: User,
    reason: str,
    attestations: dict[str, bool],
    override_reason: str = "",
    resolve_alerts: bool = True,
    keep_alerts_reason: str = "",
) -> Restriction:
    """Lift a restriction at once (DESIGN section 5). Administrators only; a reason and a complete checklist
    (each item ticked automatically or attested) are required. Past the cap (``RELEASE_CAP_COUNT`` releases in
    ``RELEASE_CAP_DAYS``) it needs an override reason and is flagged. The Redis key is removed on commit.

    The user's open "User restricted from sending email" alerts are resolved on commit
    (``alerts.restriction_released``, by name: a higher layer), unless the administrator keeps them open with
    ``resolve_alerts=False`` and a ``keep_alerts_reason``, which is written on each of them.
    """
    if not actor.has_perm(RELEASE_PERMISSION):
        raise RestrictionPermissionError("Only security administrators may release a restricted user.")
    with transaction.atomic():
        Mailbox.objects.select_for_update().get(pk=restriction.mailbox_id)
        restriction = (
            Restriction.objects.select_for_update(of=("self",))
            .select_related("tenant", "mailbox__tenant")
            .get(pk=restriction.pk)
        )
        now = timezone.now()
        plan = plan_release(
            restriction,
            actor=actor,
            reason=reason,
            attestations=attestations,
            override_reason=override_reason,
            resolve_alerts=resolve_alerts,
            keep_alerts_reason=keep_alerts_reason,
            now=now,
        )
        before = _snapshot(restriction)
        _mark_released(
            restriction, actor=actor, reason=reason, override_reason=override_reason, plan=plan, now=now
        )
        record_audit(
            "restricted_users.restriction.released",
            target=restriction,
            actor=actor,
            before=before,
            after={
                **_snapshot(restriction),
                "checklist": plan.checklist,
                "flagged": plan.past_cap,
                "releases_in_window": plan.releases_in_window + 1,
                "override_reason": restriction.release_override_reason,
                "alerts": "resolved" if resolve_alerts else "kept open",
                **({} if resolve_alerts else {"keep_alerts_reason": keep_alerts_reason.strip()}),
            },
            comment=restriction.release_reason,
        )
        publish_change(
            "restriction.released",
            target=restriction,
            payload={
                **_snapshot(restriction),
                "user": restriction.mailbox.address,
                "flagged": plan.past_cap,
                "releases_in_window": plan.releases_in_window + 1,
                "released_by": actor.get_username(),
            },
        )
        mailbox_id, restriction_id = restriction.mailbox_id, restriction.pk
        alert_args = (
            restriction_id,
            resolve_alerts,
            restriction.release_reason if resolve_alerts else keep_alerts_reason.strip(),
            actor.pk,
        )
        transaction.on_commit(lambda: refresh_redis_key(mailbox_id))
        enqueue_on_commit("alerts.restriction_released", *alert_args)
    return restriction


def _mark_released(
    restriction: Restriction,
    *,
    actor: User,
    reason: str,
    override_reason: str,
    plan: ReleasePlan,
    now: datetime,
) -> None:
    """Write the release on the (locked) restriction: who, when, why, the checklist, and the cap's flag."""
    restriction.released_at = now
    restriction.closed_at = now
    restriction.released_by = actor
    restriction.release_reason = reason.strip()
    restriction.release_override_reason = override_reason.strip() if plan.past_cap else ""
    restriction.release_flagged = plan.past_cap
    restriction.checklist = plan.checklist
    restriction.save(
        update_fields=[
            "released_at",
            "closed_at",
            "released_by",
            "release_reason",
            "release_override_reason",
            "release_flagged",
            "checklist",
        ]
    )


# ------------------------------------------------------------------------------------------------ beat


def tidy_expired(now: datetime | None = None) -> int:
    """Close the open rows whose expiry has passed (audited as the system); returns how many. Safe to run
    concurrently: rows another process holds are skipped, and are closed on the next run."""
    now = now or timezone.now()
    closed = 0
    with transaction.atomic():
        rows = list(
            Restriction.objects.open()
            .filter(released_at__isnull=True, expires_at__lte=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("mailbox", "tenant")
        )
        for restriction in rows:
            _close_expired(restriction)
            closed += 1
    return closed


def _write_key(pipe: redis.client.Pipeline, key: str, restriction: Restriction, now: datetime) -> bool:
    ttl = state.ttl_seconds(restriction.expires_at, now)
    if ttl is not None and ttl <= 0:
        pipe.delete(key)
        return False
    value = state.key_value(restriction.pk, restriction.policy_name, restriction.expires_at)
    pipe.set(key, value, ex=ttl)  # ex=None clears any TTL: "until released"
    return True


def refresh_redis_key(mailbox_id: int) -> None:
    """Make one mailbox's Redis key match the database: written while restricted, deleted otherwise.

    Called on commit by every change. Reading the database again (instead of trusting the caller) keeps a late
    callback from undoing a newer change. A Redis failure is logged: the minutely resync repairs it.
    """
    client = state.get_redis()
    if client is None:
        return
    mailbox = Mailbox.objects.select_related("tenant").filter(pk=mailbox_id).first()
    if mailbox is None:
        return
    now = timezone.now()
    key = state.restriction_key(mailbox.tenant.slug, mailbox.address)
    active = Restriction.objects.active(now).for_mailbox(mailbox).first()
    try:
        pipe = client.pipeline()
        if active is None:
            pipe.delete(key)
        else:
            _write_key(pipe, key, active, now)
        pipe.execute()
    except redis.RedisError:
        logger.warning("Could not update the restriction key %s; the next resync will", key, exc_info=True)


def sync_restrictions_to_redis(tenant: Tenant | None = None) -> int:
    """Rewrite the Redis restriction keys from the database (one tenant, or all) and delete the keys of users
    no longer restricted. Returns the number of keys written; 0 without a configured Redis (embedded mode)."""
    client = state.get_redis()
    if client is None:
        return 0
    now = timezone.now()
    active = Restriction.objects.active(now).select_related("tenant", "mailbox")
    if tenant is not None:
        active = active.filter(tenant=tenant)
    written = 0
    wanted: set[str] = set()
    pipe = client.pipeline(transaction=False)
    for restriction in active.iterator(chunk_size=2000):
        key = state.restriction_key(restriction.tenant.slug, restriction.mailbox.address)
        if _write_key(pipe, key, restriction, now):
            wanted.add(key)
            written += 1
    pipe.execute()
    stale = _stale_keys(client, state.key_pattern(tenant.slug if tenant else None), wanted)
    if stale:
        client.delete(*stale)
    return written


def _stale_keys(client: redis.Redis, pattern: str, wanted: set[str]) -> list[str]:
    """Keys matching ``pattern`` that no active restriction backs.

    Kept: a key with a null ``id`` (the policy service set it at a breach, ahead of its row; it has its own
    TTL), and a key whose restriction became active after the database was read (placed during the resync).
    """
    others = [key for key in client.scan_iter(match=pattern, count=1000) if key not in wanted]
    if not others:
        return []
    candidates: dict[str, object] = {}
    for key, raw in zip(others, client.mget(others), strict=True):
        if raw is None:
            continue  # gone meanwhile
        value = state.parse_value(raw)
        if value is not None and value.get("id") is None:
            continue
        candidates[key] = value.get("id") if value is not None else None
    ids = [rid for rid in candidates.values() if isinstance(rid, int)]
    placed_meanwhile = {
        pk: state.restriction_key(slug, address)
        for pk, slug, address in Restriction.objects.active()
        .filter(pk__in=ids)
        .values_list("pk", "tenant__slug", "mailbox__address")
    }
    return [key for key, rid in candidates.items() if placed_meanwhile.get(rid) != key]
