"""Writes of the alerts app: default policies, alerts folded per user and policy, containment by policy
action, triage (editing a policy is :mod:`alerts.policy_services`). Every function that changes state records
an audit row in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from core.models import AuditEvent, Tenant
from core.queueing import enqueue_on_commit
from core.services import audit_field_change, publish_change, record_audit
from core.sql import AnyOf
from mailboxes.models import Mailbox
from restricted_users import services as restrictions
from restricted_users.models import Restriction

from .detection import Detection, Evidence
from .exceptions import AlertStateError
from .models import (
    SEVERITY_RANK,
    Alert,
    AlertComment,
    AlertEvidence,
    AlertPolicy,
    EvaluationFailure,
    Suppression,
)
from .policies import DEFAULT_POLICIES
from .policy_services import remove_policy_override as remove_policy_override  # re-exported for older callers
from .policy_services import set_policy_override as set_policy_override
from .policy_services import update_policy as update_policy

if TYPE_CHECKING:
    from .detectors.common import Detector

logger = logging.getLogger(__name__)

TRIAGE_PERMISSION = "alerts.triage_alert"
RESTRICT_ONLY_IF_BREACH_WITHIN = timedelta(hours=24)
INVESTIGATE_WHEN_OTHER_OPEN_WITHIN = timedelta(hours=24)
# Restrictions the console itself places: by an administrator, or by an approved block sender.
CONSOLE_OWN_SOURCES = (Restriction.Source.MANUAL, Restriction.Source.INVESTIGATION)
TRUE_POSITIVES = (
    Alert.Classification.TP_COMPROMISED,
    Alert.Classification.TP_PHISHING,
    Alert.Classification.TP_MALWARE,
    Alert.Classification.TP_OTHER,
)

# ------------------------------------------------------------------------------------------------ policies


# The fields a new policy takes from its default as they are (PolicyDefault and AlertPolicy name them alike).
_AS_IN_DEFAULT = ("kind", "name", "description", "severity", "category", "action", "rerestrict_after_release")


def ensure_default_policies(tenant: Tenant) -> dict[str, AlertPolicy]:
    """The tenant's policies by kind, creating any default policy it lacks (idempotent)."""
    existing = {p.kind: p for p in AlertPolicy.objects.filter(tenant=tenant).prefetch_related("overrides")}
    missing = [
        AlertPolicy(
            tenant=tenant,
            investigate_mode=d.investigate,
            thresholds={key: t.default for key, t in d.thresholds.items()},
            **{name: getattr(d, name) for name in _AS_IN_DEFAULT},
        )
        for d in DEFAULT_POLICIES
        if d.kind not in existing
    ]
    if missing:
        AlertPolicy.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {
            p.kind: p for p in AlertPolicy.objects.filter(tenant=tenant).prefetch_related("overrides")
        }
    return existing


# ------------------------------------------------------------------------------------------------ alerts


def raise_alert(policy: AlertPolicy, detection: Detection, *, now: datetime | None = None) -> list[Alert]:
    """Fold a detection into the user's aggregating alert for the policy, or open a new one (DESIGN 5).

    Evidence already attached to any alert of this policy and user is ignored, so re-running a detector adds
    nothing; a suppressed (policy, user) pair raises nothing. Returns the alerts that gained evidence.
    """
    now = now or timezone.now()
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update().get(pk=detection.mailbox_id)
        fresh = _fresh_evidence(policy, mailbox, detection)
        if not fresh:
            return []
        if Suppression.objects.active(now).filter(policy=policy, mailbox=mailbox).exists():
            logger.info("Suppressed %s for %s: %d events not alerted", policy.name, mailbox, len(fresh))
            return []
        alert, created = _alert_to_fold_into(policy, mailbox, detection, fresh)
        before = _fold(alert, policy, detection, fresh)
        if created:
            record_audit(
                "alerts.alert.raised",
                target=alert,
                after={"evidence_count": alert.evidence_count, "details": alert.details},
            )
            publish_change("alert.raised", target=alert, payload=_alert_change(alert))
        else:
            record_audit(
                "alerts.alert.folded",
                target=alert,
                before={"evidence_count": before},
                after={"evidence_count": alert.evidence_count},
            )
            publish_change("alert.updated", target=alert, payload=_alert_change(alert))
        enqueue_on_commit("incidents.correlate_alert", alert.pk)
        if detection.breach is not None:
            _contain(policy, mailbox, detection, [alert], now)
        if created:
            _maybe_investigate(alert, now)
    return [alert]


def _fresh_evidence(policy: AlertPolicy, mailbox: Mailbox, detection: Detection) -> list[Evidence]:
    """The detection's evidence not yet on any alert of this policy and user, oldest first."""
    known = set(
        AlertEvidence.objects.filter(alert__policy=policy, alert__mailbox=mailbox).values_list(
            "kind", "event_id"
        )
    )
    return sorted(
        {(e.kind, e.event_id): e for e in detection.evidence if (e.kind, e.event_id) not in known}.values(),
        key=lambda e: e.at,
    )


def _alert_to_fold_into(
    policy: AlertPolicy, mailbox: Mailbox, detection: Detection, fresh: list[Evidence]
) -> tuple[Alert, bool]:
    """The open alert the fresh evidence folds into, or a new one (and whether it is new).

    A detection folds as one unit (a 24 h breach or a travel pair is one story): into the newest open alert
    whose activity it touches within the aggregation window, else into one new alert."""
    window = policy.aggregation_window
    alert = Alert.objects.open().filter(policy=policy, mailbox=mailbox).order_by("-last_activity_at").first()
    if alert is None or not (
        alert.first_activity_at - window <= fresh[-1].at and fresh[0].at <= alert.last_activity_at + window
    ):
        alert = Alert.objects.create(
            tenant=policy.tenant,
            policy=policy,
            mailbox=mailbox,
            title=policy.name,
            severity=detection.severity_under(policy.severity),
            category=policy.category,
            first_activity_at=fresh[0].at,
            last_activity_at=fresh[-1].at,
            details=detection.details,
        )
        return alert, True
    return alert, False


def _fold(alert: Alert, policy: AlertPolicy, detection: Detection, fresh: list[Evidence]) -> int:
    """Attach the fresh evidence to the alert, widen its activity and raise its severity; returns the
    evidence count before."""
    alert.first_activity_at = min(alert.first_activity_at, fresh[0].at)
    alert.last_activity_at = max(alert.last_activity_at, fresh[-1].at)
    AlertEvidence.objects.bulk_create(
        [AlertEvidence(alert=alert, kind=e.kind, event_id=e.event_id, at=e.at) for e in fresh],
        ignore_conflicts=True,
        batch_size=2000,
    )
    before = alert.evidence_count
    alert.evidence_count = AlertEvidence.objects.filter(alert=alert).count()
    alert.details = {**alert.details, **detection.details}
    severity = detection.severity_under(policy.severity)
    if SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(alert.severity, 0):
        alert.severity = severity
    alert.save(
        update_fields=[
            "first_activity_at",
            "last_activity_at",
            "evidence_count",
            "details",
            "severity",
            "updated_at",
        ]
    )
    return before


def _contain(
    policy: AlertPolicy, mailbox: Mailbox, detection: Detection, alerts: list[Alert], now: datetime
) -> None:
    """Apply the policy's action to a sending-limit breach (DESIGN 5: recent breaches only, same-day rule)."""
    breach = detection.breach
    if policy.action == AlertPolicy.Action.ALERT_ONLY:
        return
    assert breach is not None  # a sending-limit detection always carries its breach
    if breach.window_end < now - RESTRICT_ONLY_IF_BREACH_WITHIN:
        for alert in alerts:
            alert.details = {
                **alert.details,
                "not_restricted": "the breach is older than 24 hours (replayed)",
            }
            alert.save(update_fields=["details", "updated_at"])
        return
    if not policy.rerestrict_after_release and restrictions.released_since(
        mailbox, restrictions.utc_midnight_before(now), policy_name=policy.name
    ):
        for alert in alerts:
            alert.details = {
                **alert.details,
                "not_restricted": "released today; the policy does not re-restrict",
            }
            alert.save(update_fields=["details", "updated_at"])
        return
    until_released = policy.action == AlertPolicy.Action.RESTRICT_UNTIL_RELEASED
    restriction, _ = restrictions.restrict_user(
        mailbox,
        policy_name=policy.name,
        reason=breach.as_reason(),
        expires_at=None if until_released else restrictions.next_utc_midnight(now),
        source="policy",
        actor_label=f"policy: {policy.name}",
    )
    for alert in alerts:
        if alert.restriction_id is None:
            alert.restriction = restriction
            alert.save(update_fields=["restriction", "updated_at"])


def _maybe_investigate(alert: Alert, now: datetime) -> None:
    """Start (or correlate into) an investigation per the policy's investigate mode, after commit."""
    mode = alert.policy.investigate_mode
    if mode == AlertPolicy.InvestigateMode.NEVER:
        return
    if mode == AlertPolicy.InvestigateMode.WHEN_OTHER_ALERT_OPEN and not (
        Alert.objects.open()
        .filter(mailbox=alert.mailbox, last_activity_at__gte=now - INVESTIGATE_WHEN_OTHER_OPEN_WITHIN)
        .exclude(pk=alert.pk)
        .exists()
    ):
        return
    if "investigations.start" not in current_app.tasks:
        return  # the investigations app is not installed in this build
    enqueue_on_commit("investigations.start", alert.pk)


def raise_restriction_alert(restriction_id: int) -> Alert | None:
    """Raise or fold "User restricted from sending email" for a restriction a policy or the policy service
    placed (idempotent); None for the console's own restrictions (``CONSOLE_OWN_SOURCES``)."""
    restriction = Restriction.objects.select_related("mailbox__tenant").filter(pk=restriction_id).first()
    if restriction is None:
        return None
    if restriction.source in CONSOLE_OWN_SOURCES:
        # The console's own act (an administrator's restriction, an approved block sender) is not evidence
        # against the user: no alert, no risk points. The incident correlates the restriction itself.
        return None
    policy = ensure_default_policies(restriction.mailbox.tenant)[AlertPolicy.Kind.RESTRICTION]
    if not policy.enabled:
        return None
    detection = Detection(
        mailbox_id=restriction.mailbox_id,
        evidence=[Evidence("restriction", str(restriction.pk), restriction.placed_at)],
        details={
            "restriction": restriction.reason,
            "placed_by": restriction.placed_by_label,
            "policy_name": restriction.policy_name,
        },
    )
    alerts = raise_alert(policy, detection)
    for alert in alerts:
        if alert.restriction_id != restriction.pk:
            alert.restriction = restriction
            alert.save(update_fields=["restriction", "updated_at"])
    return alerts[0] if alerts else None


# Detectors read back (baselines, look-backs) and ahead (rolling windows) of a batch's range: keep the range
# far enough from datetime.min / max that their arithmetic cannot overflow, whatever reached the database.
SAFE_EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
SAFE_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
RETRY_BASE_SECONDS = 30
# Errors of the database itself: the task retries as a whole (every mailbox would fail alike).
_INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)


def _safe_moment(moment: datetime) -> datetime:
    return min(max(moment, SAFE_EARLIEST), SAFE_LATEST)


def evaluate_mailboxes(
    tenant_id: int, mailbox_ids: Iterable[int], start: datetime, end: datetime, *, attempt: int = 0
) -> int:
    """Learn the batch's contacts (``alerts.contacts``), then run every enabled detector for the users a
    batch touched; returns how many alerts gained evidence. Each mailbox is evaluated independently: when a
    detector fails on the batch, it is run again per mailbox, so one mailbox's failure (logged, recorded as
    an :class:`EvaluationFailure`) never stops the others; the failed mailboxes alone are evaluated again by
    a follow-up ``alerts.evaluate`` with exponential backoff, at most ``DETECTION_MAX_RETRIES`` times."""
    from .contacts import learn_contacts
    from .detectors import DETECTORS

    start, end = _safe_moment(start), _safe_moment(end)
    tenant = Tenant.objects.get(pk=tenant_id)
    policies = ensure_default_policies(tenant)
    mailboxes = list(Mailbox.objects.filter(AnyOf("pk", mailbox_ids), tenant=tenant))
    learn_contacts(tenant.pk, [m.pk for m in mailboxes], start, end)
    failures: dict[int, list[tuple[str, BaseException]]] = {}
    touched = 0
    for kind, detect in DETECTORS.items():
        policy = policies.get(kind)
        if policy is None or not policy.enabled:
            continue
        in_scope = [m for m in mailboxes if policy.covers(m.address, m.department)]
        if not in_scope:
            continue
        for detection in _detect_each(kind, detect, policy, in_scope, start, end, failures):
            try:
                with transaction.atomic():
                    touched += len(raise_alert(policy, detection))
            except _INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - one user's failure is recorded and retried alone
                failures.setdefault(detection.mailbox_id, []).append((kind, exc))
    if failures:
        _record_failures(tenant, {m.pk: m for m in mailboxes}, failures, start, end, attempt)
    return touched


def _detect_each(
    kind: str,
    detect: Detector,
    policy: AlertPolicy,
    mailboxes: list[Mailbox],
    start: datetime,
    end: datetime,
    failures: dict[int, list[tuple[str, BaseException]]],
) -> list[Detection]:
    """The detector's findings for ``mailboxes``: one call for all of them, or, when that call fails, one
    call per mailbox, each failure kept in ``failures`` by mailbox id."""
    try:
        with transaction.atomic():  # a savepoint: a failed query must not abort the caller's transaction
            return list(detect(policy, mailboxes, start, end))
    except _INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a detector bug: retry per mailbox to isolate it
        if len(mailboxes) == 1:
            failures.setdefault(mailboxes[0].pk, []).append((kind, exc))
            return []
    detections: list[Detection] = []
    for mailbox in mailboxes:
        detections.extend(_detect_one(kind, detect, policy, mailbox, start, end, failures))
    return detections


def _detect_one(
    kind: str,
    detect: Detector,
    policy: AlertPolicy,
    mailbox: Mailbox,
    start: datetime,
    end: datetime,
    failures: dict[int, list[tuple[str, BaseException]]],
) -> list[Detection]:
    try:
        with transaction.atomic():
            return list(detect(policy, [mailbox], start, end))
    except _INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as this mailbox's failure, retried later
        failures.setdefault(mailbox.pk, []).append((kind, exc))
        return []


def _record_failures(
    tenant: Tenant,
    mailboxes: dict[int, Mailbox],
    failures: dict[int, list[tuple[str, BaseException]]],
    start: datetime,
    end: datetime,
    attempt: int,
) -> None:
    """Log and record each failure; schedule the failed mailboxes alone for another attempt, with backoff."""
    final = attempt >= settings.DETECTION_MAX_RETRIES
    rows = []
    for mailbox_id, errors in failures.items():
        address = mailboxes[mailbox_id].address if mailbox_id in mailboxes else f"#{mailbox_id}"
        for kind, exc in errors:
            logger.error(
                "Detection %s failed for mailbox %s (id %s, tenant %s, attempt %d%s): %s: %s",
                kind,
                address,
                mailbox_id,
                tenant.slug,
                attempt,
                ", giving up" if final else "",
                exc.__class__.__name__,
                exc,
                exc_info=exc,
            )
            rows.append(
                EvaluationFailure(
                    tenant=tenant,
                    mailbox_id=mailbox_id,
                    mailbox_address=address[:320],
                    detector=kind,
                    error=f"{exc.__class__.__name__}: {exc}"[:2000],
                    attempt=attempt,
                    final=final,
                )
            )
    EvaluationFailure.objects.bulk_create(rows)
    if final:
        return
    enqueue_on_commit(
        "alerts.evaluate",
        tenant.pk,
        sorted(failures),
        start.isoformat(),
        end.isoformat(),
        attempt + 1,
        countdown=RETRY_BASE_SECONDS * 2**attempt,
    )


# ------------------------------------------------------------------------------------------------ triage


def _locked(alert: Alert) -> Alert:
    return Alert.objects.select_for_update(of=("self",)).select_related("policy", "mailbox").get(pk=alert.pk)


def set_alert_status(alert: Alert, *, actor: User, status: str) -> Alert:
    """New ↔ In progress. Resolving goes through :func:`resolve_alert` (it needs a classification)."""
    if status not in (Alert.Status.NEW, Alert.Status.IN_PROGRESS):
        raise AlertStateError("Use resolve to resolve an alert (it needs a classification).")
    with transaction.atomic():
        alert = _locked(alert)
        if alert.status == status:
            return alert
        before = alert.status
        alert.status = status
        alert.resolved_at = None
        alert.resolved_by = None
        alert.save(update_fields=["status", "resolved_at", "resolved_by", "updated_at"])
        audit_field_change(
            "alerts.alert.status_changed", alert, actor=actor, field="status", before=before, after=status
        )
        publish_change("alert.updated", target=alert, payload=_alert_change(alert))
    return alert


def assign_alert(alert: Alert, *, actor: User, assignee: User | None) -> Alert:
    """Give the alert to ``assignee`` (None: nobody), an active person who may triage alerts; anyone else is
    refused with :class:`AlertStateError`, whoever asks (console, API, a task). Taking a New alert also starts
    work on it: the status moves to In progress, written in the same audit row (before / after). Assigning it
    to whom it already belongs changes nothing and writes nothing."""
    if assignee is not None and not (assignee.is_active and assignee.has_perm(TRIAGE_PERMISSION)):
        raise AlertStateError(f"{assignee.get_username()!r} is not a person who may triage alerts.")
    with transaction.atomic():
        alert = _locked(alert)
        if alert.assigned_to_id == (assignee.pk if assignee is not None else None):
            return alert
        before = {
            "assignee": alert.assigned_to.get_username() if alert.assigned_to else None,
            "status": alert.status,
        }
        alert.assigned_to = assignee
        if assignee is not None and alert.status == Alert.Status.NEW:
            alert.status = Alert.Status.IN_PROGRESS  # taking an alert starts work on it (audited below)
        alert.save(update_fields=["assigned_to", "status", "updated_at"])
        record_audit(
            "alerts.alert.assigned",
            target=alert,
            actor=actor,
            before=before,
            after={"assignee": assignee.get_username() if assignee else None, "status": alert.status},
        )
        publish_change("alert.updated", target=alert, payload=_alert_change(alert))
    return alert


def comment_on_alert(alert: Alert, *, actor: User | None, body: str, actor_label: str = "") -> AlertComment:
    body = body.strip()
    if not body:
        raise AlertStateError("A comment cannot be empty.")
    with transaction.atomic():
        comment = AlertComment.objects.create(alert=alert, author=actor, body=body)
        record_audit(
            "alerts.alert.commented",
            target=alert,
            actor=actor,
            actor_label=actor_label,
            after={"comment": body},
        )
    return comment


def resolve_alert(
    alert: Alert,
    *,
    actor: User | None,
    classification: str,
    comment: str = "",
    suppress_for: timedelta | None = None,
    actor_label: str = "",
) -> Alert:
    """Resolve with a classification; optionally suppress the (policy, user) pair for a while."""
    if classification not in Alert.Classification.values:
        raise AlertStateError(f"Unknown classification {classification!r}.")
    if suppress_for is not None and not timedelta(0) < suppress_for <= timedelta(days=365):
        raise AlertStateError("A suppression lasts between a minute and a year.")
    if suppress_for is not None and classification in TRUE_POSITIVES:
        raise AlertStateError(
            "A true positive cannot be suppressed: suppression hides future alerts of this policy for the "
            "user, which is for expected activity or false positives."
        )
    with transaction.atomic():
        alert = _locked(alert)
        if alert.status == Alert.Status.RESOLVED:
            return alert
        before = {"status": alert.status}
        alert.status = Alert.Status.RESOLVED
        alert.classification = classification
        alert.resolved_at = timezone.now()
        alert.resolved_by = actor if actor is not None and actor.is_authenticated else None
        alert.save(update_fields=["status", "classification", "resolved_at", "resolved_by", "updated_at"])
        if comment.strip():
            AlertComment.objects.create(alert=alert, author=alert.resolved_by, body=comment.strip())
        after = {"status": alert.status, "classification": classification}
        if suppress_for is not None:
            until = alert.resolved_at + suppress_for
            Suppression.objects.create(
                tenant=alert.tenant,
                policy=alert.policy,
                mailbox=alert.mailbox,
                until=until,
                reason=comment.strip(),
                created_by=alert.resolved_by,
            )
            after["suppressed_until"] = until.isoformat()
        record_audit(
            "alerts.alert.resolved",
            target=alert,
            actor=actor,
            actor_label=actor_label,
            before=before,
            after=after,
            comment=comment.strip(),
        )
        publish_change("alert.resolved", target=alert, payload=_alert_change(alert))
    return alert


def _alert_change(alert: Alert) -> dict:
    """The change-feed ``data`` of an alert (no telemetry: the console link shows the evidence)."""
    return {
        "alert_id": alert.pk,
        "title": alert.title,
        "severity": alert.severity,
        "status": alert.status,
        "classification": alert.classification,
        "policy_id": alert.policy_id,
        "user": alert.mailbox.address,
        "evidence_count": alert.evidence_count,
        "first_activity_at": alert.first_activity_at.isoformat(),
        "last_activity_at": alert.last_activity_at.isoformat(),
    }


def resolved_by_label(alert: Alert) -> str:
    """Who resolved the alert last, as the audit trail names them (a person's username or a system label)."""
    row = (
        AuditEvent.objects.for_target(alert)
        .filter(action="alerts.alert.resolved")
        .order_by("-at", "-id")
        .values_list("actor_label", flat=True)
        .first()
    )
    return row or ""


def reopen_alert(alert: Alert, *, actor: User | None, reason: str, actor_label: str = "") -> Alert:
    """Resolved → New again (classification cleared), with the reason as a comment; audited and published.
    Used when what resolved it no longer holds (the investigation's remediation was undone)."""
    with transaction.atomic():
        alert = _locked(alert)
        if alert.status != Alert.Status.RESOLVED:
            return alert
        before = {"status": alert.status, "classification": alert.classification}
        alert.status = Alert.Status.NEW
        alert.classification = ""
        alert.resolved_at = None
        alert.resolved_by = None
        alert.save(update_fields=["status", "classification", "resolved_at", "resolved_by", "updated_at"])
        author = actor if actor is not None and actor.is_authenticated else None
        AlertComment.objects.create(alert=alert, author=author, body=f"Reopened: {reason}")
        record_audit(
            "alerts.alert.reopened",
            target=alert,
            actor=author,
            actor_label=actor_label,
            before=before,
            after={"status": alert.status},
            comment=reason,
        )
        publish_change("alert.reopened", target=alert, payload=_alert_change(alert))
        # The incident reopens with its alert (a higher layer: by task name, on commit).
        enqueue_on_commit("incidents.correlate_alert", alert.pk)
    return alert


def resolve_restriction_alerts(
    restriction_id: int, *, resolve: bool, reason: str, actor_id: int | None = None
) -> int:
    """After a release: resolve the user's open "User restricted from sending email" alerts (the account was
    cleaned and released), or, when the administrator chose to keep them open, record why on each. Returns
    how many alerts it resolved or annotated. Idempotent."""
    from django.contrib.auth import get_user_model

    restriction = Restriction.objects.select_related("mailbox").filter(pk=restriction_id).first()
    if restriction is None:
        return 0
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    alerts = list(
        Alert.objects.open()
        .filter(mailbox_id=restriction.mailbox_id, policy__kind=AlertPolicy.Kind.RESTRICTION)
        .order_by("pk")
    )
    who = actor.get_username() if actor is not None else "an administrator"
    for alert in alerts:
        if resolve:
            resolve_alert(
                alert,
                actor=actor,
                actor_label="release",
                classification=Alert.Classification.TP_OTHER,
                comment=f"Released by {who}: {reason}",
            )
        else:
            comment_on_alert(
                alert, actor=actor, actor_label="release", body=f"Kept open at the release by {who}: {reason}"
            )
    return len(alerts)
