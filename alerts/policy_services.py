"""Policy editing: a policy's settings and a mailbox's own thresholds, validated and audited in the same
transaction. Moved out of :mod:`alerts.services`, which re-exports these names for older callers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.services import record_audit
from mailboxes.models import Mailbox

from .exceptions import PolicyValidationError
from .models import AlertPolicy, PolicyOverride, Severity
from .policies import DEFAULTS_BY_KIND


def _clean_thresholds(kind: str, thresholds: dict) -> dict[str, int]:
    spec = DEFAULTS_BY_KIND[kind].thresholds
    errors: dict[str, str] = {}
    cleaned: dict[str, int] = {}
    for key, value in thresholds.items():
        if key not in spec:
            errors[f"thresholds.{key}"] = "unknown threshold for this policy"
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors[f"thresholds.{key}"] = "must be a whole number"
            continue
        if not spec[key].minimum <= value <= spec[key].maximum:
            errors[f"thresholds.{key}"] = f"must be between {spec[key].minimum} and {spec[key].maximum}"
            continue
        cleaned[key] = value
    if errors:
        raise PolicyValidationError(errors)
    return cleaned


POLICY_EDITABLE = (
    "enabled",
    "severity",
    "thresholds",
    "aggregation_minutes",
    "action",
    "investigate_mode",
    "rerestrict_after_release",
    "notify_recipients",
    "scope",
    "include_mailboxes",
    "include_departments",
    "exclude_mailboxes",
    "exclude_departments",
    "notify_min_severity",
    "notify_daily_limit",
)


def _policy_state(policy: AlertPolicy) -> dict:
    return {field: getattr(policy, field) for field in POLICY_EDITABLE}


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_CHOICE_FIELDS: dict[str, list[tuple[str, str]]] = {
    "severity": Severity.choices,  # the choices of both severity fields
    "notify_min_severity": Severity.choices,
    "action": AlertPolicy.Action.choices,
    "investigate_mode": AlertPolicy.InvestigateMode.choices,
    "scope": AlertPolicy.Scope.choices,
}


def _is_minutes_of_a_day(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 24 * 60


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


# Fields whose value is one check: (it holds, the message when it does not).
_SCALAR_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "aggregation_minutes": (_is_minutes_of_a_day, "must be between 1 and 1440 minutes"),
    "enabled": (_is_bool, "must be true or false"),
    "rerestrict_after_release": (_is_bool, "must be true or false"),
}
# List fields: what they list, and whether they list email addresses (lower-cased and validated each).
_LISTS = {
    "notify_recipients": ("email addresses", True),
    "include_mailboxes": ("email addresses", True),
    "exclude_mailboxes": ("email addresses", True),
    "include_departments": ("department names", False),
    "exclude_departments": ("department names", False),
}


def _check_choices(changes: dict, errors: dict[str, str]) -> None:
    for field, field_choices in _CHOICE_FIELDS.items():
        if field in changes and changes[field] not in {value for value, _ in field_choices}:
            errors[field] = f"must be one of {', '.join(value for value, _ in field_choices)}"


def _check_lists(changes: dict, errors: dict[str, str]) -> None:
    """Normalise each list (trimmed, sorted, unique; addresses lower-cased) and name a bad address in it."""
    from django.core.validators import validate_email

    for field, (noun, addresses) in _LISTS.items():
        if field not in changes:
            continue
        if not _is_str_list(changes[field]):
            errors[field] = f"must be a list of {noun}"
            continue
        trimmed = (v.strip() for v in changes[field] if v.strip())
        changes[field] = sorted({v.lower() for v in trimmed} if addresses else set(trimmed))
        for value in changes[field] if addresses else ():
            try:
                validate_email(value)
            except Exception:  # noqa: BLE001 - Django raises ValidationError; the message is ours
                errors[field] = f"{value!r} is not an email address"


def _validate_policy_changes(policy: AlertPolicy, changes: dict) -> None:
    """Check (and normalise in place) every value of a policy change; raise with all the errors at once."""
    errors: dict[str, str] = {field: "cannot be changed" for field in changes if field not in POLICY_EDITABLE}
    if "thresholds" in changes:
        try:
            changes["thresholds"] = {
                **policy.thresholds,
                **_clean_thresholds(policy.kind, changes["thresholds"]),
            }
        except PolicyValidationError as exc:
            errors.update(exc.errors)
    _check_choices(changes, errors)
    for field, (holds, message) in _SCALAR_CHECKS.items():
        if field in changes and not holds(changes[field]):
            errors[field] = message
    if policy.kind != AlertPolicy.Kind.SENDING_LIMIT and changes.get(
        "action", AlertPolicy.Action.ALERT_ONLY
    ) != (AlertPolicy.Action.ALERT_ONLY):
        errors["action"] = "only the sending limit policy can restrict users"
    limit = changes.get("notify_daily_limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 10_000:
        errors["notify_daily_limit"] = "must be between 0 and 10000 notifications a day"
    _check_lists(changes, errors)
    if errors:
        raise PolicyValidationError(errors)


def update_policy(policy: AlertPolicy, *, actor: User, **changes: Any) -> AlertPolicy:
    """Change a policy's settings after validating every value; the before / after are audited."""
    _validate_policy_changes(policy, changes)
    with transaction.atomic():
        policy = AlertPolicy.objects.select_for_update().get(pk=policy.pk)
        before = _policy_state(policy)
        for field, value in changes.items():
            setattr(policy, field, value)
        after = _policy_state(policy)
        if after == before:
            return policy
        policy.save()
        changed = {k for k in after if after[k] != before[k]}
        record_audit(
            "alerts.policy.updated",
            target=policy,
            actor=actor,
            before={k: before[k] for k in sorted(changed)},
            after={k: after[k] for k in sorted(changed)},
        )
    return policy


def set_policy_override(
    policy: AlertPolicy,
    *,
    actor: User,
    mailbox_address: str,
    thresholds: dict,
    expires_at: datetime | None = None,
    note: str = "",
) -> PolicyOverride:
    """Give one mailbox its own thresholds on a policy (replacing any it had), optionally expiring."""
    address = mailbox_address.strip().lower()
    if not Mailbox.objects.filter(tenant=policy.tenant, address=address).exists():
        raise PolicyValidationError({"mailbox_address": f"{address!r} is not a mailbox of {policy.tenant}"})
    if not thresholds:
        raise PolicyValidationError({"thresholds": "give at least one threshold"})
    cleaned = _clean_thresholds(policy.kind, thresholds)
    if expires_at is not None and expires_at <= timezone.now():
        raise PolicyValidationError({"expires_at": "must be in the future"})
    with transaction.atomic():
        existing = PolicyOverride.objects.filter(policy=policy, mailbox_address=address).first()
        before = (
            {"thresholds": existing.thresholds, "expires_at": _iso(existing.expires_at)} if existing else None
        )
        override, _ = PolicyOverride.objects.update_or_create(
            policy=policy,
            mailbox_address=address,
            defaults={"thresholds": cleaned, "expires_at": expires_at, "note": note.strip()},
        )
        record_audit(
            "alerts.policy.override_set",
            target=policy,
            actor=actor,
            before=before,
            after={"mailbox": address, "thresholds": cleaned, "expires_at": _iso(expires_at)},
            comment=note,
        )
    return override


def remove_policy_override(override: PolicyOverride, *, actor: User) -> None:
    """Drop a mailbox's own thresholds: the policy's apply to it again at once."""
    with transaction.atomic():
        record_audit(
            "alerts.policy.override_removed",
            target=override.policy,
            actor=actor,
            before={"mailbox": override.mailbox_address, "thresholds": override.thresholds},
            after=None,
        )
        override.delete()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
