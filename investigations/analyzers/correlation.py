"""Analyzer 1, correlated alerts: the trigger and every other alert on the user in the last 7 days.

Rule: every alert of the user whose last activity is within the look-back, plus any alert already attached
(the trigger, correlated triggers), is attached to the investigation and gets one finding:

- an operator's request ("Admin triggered …") is *clean*: it asks for the investigation, it is not evidence;
- an alert reporting a restriction the console itself placed (by hand, or a ``block_sender``) is *clean*;
- an alert resolved as a true positive is *malicious*; as false positive or expected activity, *clean*;
- an informational alert is *clean* (its rule or change is judged by the analyzer that owns it);
- any other alert is *suspicious*, worth points by severity (high 15, medium 10, low 5; true positive 20),
  counted once per policy (its weightiest alert), since one burst may be split over several alerts.

Invariant: a re-run attaches nothing twice and updates each alert's finding in place.
"""

from __future__ import annotations

from django.db.models import Q

from alerts.models import Alert, AlertPolicy, Severity
from alerts.services import CONSOLE_OWN_SOURCES

from ..models import Finding
from .base import AnalyzerResult, Context, Risk

NAME = "correlated_alerts"
SEVERITY_POINTS: dict[str, int] = {
    Severity.HIGH: 15,
    Severity.MEDIUM: 10,
    Severity.LOW: 5,
    Severity.INFORMATIONAL: 0,
}
TRUE_POSITIVE_POINTS = 20
TRUE_POSITIVES = (
    Alert.Classification.TP_COMPROMISED,
    Alert.Classification.TP_PHISHING,
    Alert.Classification.TP_MALWARE,
    Alert.Classification.TP_OTHER,
)


def correlated_alerts(ctx: Context) -> AnalyzerResult:
    investigation = ctx.investigation
    alerts = list(
        Alert.objects.filter(mailbox=ctx.mailbox)
        .filter(
            Q(last_activity_at__gte=ctx.since)
            | Q(pk=investigation.trigger_alert_id)
            | Q(investigations=investigation)
        )
        .select_related("policy", "restriction")
        .distinct()
        .order_by("first_activity_at", "id")
    )
    investigation.alerts.add(*alerts)
    findings = []
    counts: dict[str, int] = {
        Finding.Verdict.MALICIOUS: 0,
        Finding.Verdict.SUSPICIOUS: 0,
        Finding.Verdict.CLEAN: 0,
    }
    judged = [(alert, *_judge(alert)) for alert in alerts]
    # Points count once per policy (its weightiest alert): a burst split over several alerts is one signal.
    counted: set[int] = set()
    for alert, verdict, reason, points in sorted(judged, key=lambda item: (-item[3], item[0].pk)):
        if alert.policy_id in counted:
            points = 0
        elif points:
            counted.add(alert.policy_id)
        counts[verdict] += 1
        label = f"{alert.title} ({alert.evidence_count} event{'s' if alert.evidence_count != 1 else ''})"
        findings.append(
            ctx.record(
                NAME,
                Finding.EntityType.ALERT,
                str(alert.pk),
                label=label,
                verdict=verdict,
                reasons=[reason],
                risk=[Risk(points, f"{alert.get_severity_display()} alert: {alert.title}")] if points else [],
                data={
                    "alert_id": alert.pk,
                    "policy_kind": alert.policy.kind,
                    "severity": alert.severity,
                    "status": alert.status,
                    "classification": alert.classification,
                    "evidence_count": alert.evidence_count,
                    "first_activity_at": alert.first_activity_at.isoformat(),
                    "last_activity_at": alert.last_activity_at.isoformat(),
                    "restriction_id": alert.restriction_id,
                    "trigger": alert.pk == investigation.trigger_alert_id,
                },
            )
        )
    summary = (
        f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} on the user in 7 days: "
        f"{counts['malicious']} malicious, {counts['suspicious']} suspicious, {counts['clean']} clean"
    )
    return AnalyzerResult(summary, findings)


def _judge(alert: Alert) -> tuple[str, str, int]:
    """(verdict, reason, points) of one alert, by the rule in the module docstring."""
    if alert.policy.kind == AlertPolicy.Kind.ADMIN_INVESTIGATION:
        return Finding.Verdict.CLEAN, "An operator asked for this investigation; not evidence by itself.", 0
    if alert.restriction is not None and alert.restriction.source in CONSOLE_OWN_SOURCES:
        return (
            Finding.Verdict.CLEAN,
            "Reports a restriction the console itself placed (by hand or by a block sender); not evidence.",
            0,
        )
    if alert.status == Alert.Status.RESOLVED:
        if alert.classification in TRUE_POSITIVES:
            return (
                Finding.Verdict.MALICIOUS,
                f"Resolved as {alert.get_classification_display().lower()}.",
                TRUE_POSITIVE_POINTS,
            )
        return Finding.Verdict.CLEAN, f"Resolved as {alert.get_classification_display().lower()}.", 0
    points = SEVERITY_POINTS.get(alert.severity, 0)
    if points == 0:
        return Finding.Verdict.CLEAN, "Informational alert; the change it reports is judged on its own.", 0
    return (
        Finding.Verdict.SUSPICIOUS,
        f"{alert.get_severity_display()} alert, {alert.get_status_display().lower()}.",
        points,
    )
