"""Writes of the playbook side of investigations (DESIGN section 6): opening an investigation for an alert or
correlating the alert into the user's open one, starting one by hand, stopping one.

Invariants: a user has at most one *open* investigation (Queued, Running, Pending action, Partially
remediated). Every opener takes the mailbox row lock first (``select_for_update``), so two concurrent
triggers for one user open one investigation and the second correlates into it. Every change writes its audit
row in the same transaction; runs are enqueued on commit, so a worker never sees an investigation that was
rolled back.
"""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from alerts.detection import Detection, Evidence
from alerts.models import Alert, AlertEvidence, AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from core.queueing import enqueue_on_commit
from core.services import publish_change, record_audit
from mailboxes.models import Mailbox

from .exceptions import InvestigationPermissionError
from .models import Investigation

logger = logging.getLogger(__name__)

START_PERMISSION = "investigations.start_investigation"


def start_investigation_for_alert(alert_id: int) -> Investigation:
    """Open an investigation for the alert's user, or add the alert to the user's open one and re-run it.

    Idempotent: an alert already attached to an investigation returns that investigation and enqueues nothing
    (a redelivered task, or the by-hand path that already handled its own alert). The console's own
    restrictions (an approved ``block_sender``, by hand) raise no alert, so they start nothing.
    Raises ``Alert.DoesNotExist`` for an unknown id.
    """
    with transaction.atomic():
        alert = Alert.objects.select_related("mailbox").get(pk=alert_id)
        mailbox = _lock_mailbox(alert.mailbox_id)
        attached = alert.investigations.order_by("-created_at", "-id").first()
        if attached is not None:
            return attached
        return _open_or_correlate(mailbox, alert, actor=None, comment="")


def start_investigation_by_hand(mailbox: Mailbox, *, actor: User, comment: str = "") -> Investigation:
    """An operator starts a compromised-user investigation on a mailbox.

    Raises the "Admin triggered user compromise investigation" alert (a manual evidence event with a fresh
    id, so two requests are two events) and opens an investigation for it, or correlates it into the user's
    open one and re-runs the analyzers. A suppressed or disabled admin policy raises no alert; the operator's
    request still opens (or re-runs) the investigation.
    """
    if not actor.has_perm(START_PERMISSION):
        raise InvestigationPermissionError(
            "Only security operators and administrators may start an investigation."
        )
    comment = comment.strip()
    now = timezone.now()
    with transaction.atomic():
        mailbox = _lock_mailbox(mailbox.pk)
        policy = ensure_default_policies(mailbox.tenant)[AlertPolicy.Kind.ADMIN_INVESTIGATION]
        alert = None
        if policy.enabled:
            detection = Detection(
                mailbox_id=mailbox.pk,
                evidence=[Evidence(AlertEvidence.Kind.MANUAL, f"manual:{uuid.uuid4().hex}", now)],
                details={"requested_by": actor.get_username(), **({"comment": comment} if comment else {})},
            )
            raised = raise_alert(policy, detection, now=now)
            alert = raised[-1] if raised else None
        return _open_or_correlate(mailbox, alert, actor=actor, comment=comment)


def request_run(investigation: Investigation) -> None:
    """Ask for a (re-)run of the analyzers once the current transaction commits."""
    Investigation.objects.filter(pk=investigation.pk).update(run_requested_at=timezone.now())
    enqueue_on_commit("investigations.run", investigation.pk)


def _lock_mailbox(mailbox_id: int) -> Mailbox:
    return Mailbox.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=mailbox_id)


def _open_or_correlate(
    mailbox: Mailbox, alert: Alert | None, *, actor: User | None, comment: str
) -> Investigation:
    """With the mailbox locked: add the alert to the user's open investigation and re-run it, or open one."""
    # FOR UPDATE waits for a run that holds the row and re-checks "open" on its outcome, so an investigation
    # that a finishing run just closed (e.g. No threats found) is not re-opened by a late alert.
    current = (
        Investigation.objects.open()
        .select_for_update()
        .filter(mailbox=mailbox)
        .order_by("-created_at", "-id")
        .first()
    )
    if current is None:
        investigation = Investigation.objects.create(
            tenant=mailbox.tenant,
            mailbox=mailbox,
            trigger_alert=alert,
            started_by=actor if actor is not None and actor.is_authenticated else None,
            status=Investigation.Status.QUEUED,
        )
        action = "investigations.investigation.opened"
        after = {
            "status": investigation.status,
            "trigger_alert": alert.pk if alert else None,
            "by_hand": actor is not None,
        }
    else:
        investigation, action = current, "investigations.investigation.correlated"
        after = {"alert": alert.pk if alert else None, "status": current.status}
        comment = comment or "A new trigger for the user: alert added, analyzers re-run."
    if alert is not None:
        investigation.alerts.add(alert)
    record_audit(
        action, target=investigation, actor=actor, actor_label="playbook", after=after, comment=comment
    )
    if current is None:  # a new investigation: announce it and put it in the user's incident
        publish_change(
            "investigation.opened",
            target=investigation,
            payload={
                "investigation_id": investigation.pk,
                "user": mailbox.address,
                "status": investigation.status,
                "trigger_alert": alert.pk if alert else None,
                "by_hand": actor is not None,
            },
        )
        enqueue_on_commit("incidents.correlate_investigation", investigation.pk)
    request_run(investigation)
    return investigation
