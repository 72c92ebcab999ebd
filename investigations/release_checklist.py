"""What completed remediation actions prove for the Restricted Users release checklist (DESIGN section 5).

Registered with ``restricted_users.services.register_checklist_source`` from ``InvestigationsConfig.ready``,
so the restriction app (a lower layer) never imports this one.
"""

from __future__ import annotations

from django.db.models import Q

from restricted_users.models import Restriction

from .models import Investigation, RemediationAction

Status = RemediationAction.Status
Type = RemediationAction.Type


def release_checklist_ticks(restriction: Restriction) -> dict[str, str]:
    """Release checklist items proven by completed remediation actions on the restricted user (registered with
    ``restricted_users.services.register_checklist_source``). An action counts when it completed after the
    restriction was placed, or belongs to the investigation whose block sender placed it."""
    related = Q(completed_at__gte=restriction.placed_at)
    investigation_id = (restriction.reason or {}).get("investigation")
    if isinstance(investigation_id, int):
        related |= Q(investigation_id=investigation_id)
    completed = (
        RemediationAction.objects.filter(
            investigation__mailbox_id=restriction.mailbox_id, status=Status.COMPLETED
        )
        .filter(related)
        .order_by("completed_at")
    )
    ticks: dict[str, str] = {}
    proofs: dict[str, tuple[str, str]] = {
        Type.FORCE_PASSWORD_RESET: ("password_reset", "password reset forced"),
        Type.REVOKE_SESSIONS: ("sessions_revoked", "sessions revoked"),
    }
    for action in completed.filter(action_type__in=proofs):
        item, what = proofs[action.action_type]
        ticks.setdefault(
            item,
            f"Investigation #{action.investigation_id}: {what} at {action.completed_at:%Y-%m-%d %H:%M} UTC",
        )
    since = Q(updated_at__gte=restriction.placed_at)
    if isinstance(investigation_id, int):
        since |= Q(pk=investigation_id)
    remediated = (
        Investigation.objects.filter(
            mailbox_id=restriction.mailbox_id, status=Investigation.Status.REMEDIATED
        )
        .filter(since)
        .order_by("-updated_at")
        .first()
    )
    if remediated is not None:
        ticks["forwarding_rules_delegates_reviewed"] = (
            f"Investigation #{remediated.pk} reviewed forwarding, inbox rules and delegates, and every "
            "action it proposed was completed"
        )
    return ticks
