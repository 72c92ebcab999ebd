"""What an investigation's page shows, tab by tab. Each tab is its own URL (server-rendered: the browser's
history, bookmarks and keyboard work as for any link) and reads only what it shows, so a tab's query count
does not grow with the other tabs' rows.

Overview: key findings first, the status, the summary and the actions (decide the pending ones; Undo sits
next to each completed reversible action). Then Graph, Alerts, Mailbox, Evidence, Clusters (post-compromise
and external first, clean ones collapsed; each opens its own page of messages), Log (grouped by run) and
History (the audit trail)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby

from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from alerts.models import Alert
from core.models import AuditEvent
from investigations.models import Finding, Investigation, MailCluster, RemediationAction
from mailboxes.models import Delegation, InboxRule, MailboxForwarding
from mailflow.models import MessageEvent

from .investigation_graph import build_graph

TABS = (
    ("overview", "Overview"),
    ("graph", "Graph"),
    ("alerts", "Alerts"),
    ("mailbox", "Mailbox"),
    ("evidence", "Evidence"),
    ("clusters", "Clusters"),
    ("log", "Log"),
    ("history", "History"),
)
TAB_NAMES = frozenset(name for name, _ in TABS)
HISTORY_CAP = 200
CLUSTER_MESSAGES_CAP = 200
VERDICT_ORDER: dict[str, int] = {
    Finding.Verdict.MALICIOUS: 0,
    Finding.Verdict.SUSPICIOUS: 1,
    Finding.Verdict.CLEAN: 2,
}


def tab_url(investigation_id: int, tab: str) -> str:
    if tab == "overview":
        return reverse("console:investigation_detail", args=[investigation_id])
    return reverse("console:investigation_tab", args=[investigation_id, tab])


def tabs_of(investigation_id: int, current: str) -> list[dict]:
    return [
        {"name": name, "label": label, "url": tab_url(investigation_id, name), "current": name == current}
        for name, label in TABS
    ]


def reasons_of(finding: Finding) -> list[str]:
    """A finding's reasons as sentences, whether the analyzer stored strings or small objects."""
    texts = []
    for reason in finding.reasons or []:
        if isinstance(reason, dict):
            texts.append(str(reason.get("reason") or reason.get("text") or reason))
        else:
            texts.append(str(reason))
    return texts


def optional_url(name: str, *args: object) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def alerts_of(investigation: Investigation) -> list[Alert]:
    # One subquery of ids (the links and the trigger alert, a UNION), not a join nor an OR: either defeats the
    # primary key index and reads every alert.
    ids = Investigation.alerts.through.objects.filter(investigation_id=investigation.pk).values("alert_id")
    if investigation.trigger_alert_id:
        ids = ids.union(Alert.objects.filter(pk=investigation.trigger_alert_id).values("id"))
    return list(Alert.objects.with_related().filter(pk__in=ids).order_by("-last_activity_at", "-id"))


def findings_of(investigation: Investigation) -> list[Finding]:
    findings = sorted(
        investigation.findings.all(), key=lambda f: (VERDICT_ORDER.get(f.verdict, 3), f.entity_type)
    )
    for finding in findings:
        finding.reason_texts = reasons_of(finding)  # type: ignore[attr-defined]  # read by the template
    return findings


def actions_of(investigation: Investigation) -> list[RemediationAction]:
    return list(
        investigation.actions.with_related().select_related("undone_by").order_by("proposed_at", "id")
    )


def remediated_finding_ids(actions: list[RemediationAction]) -> set[int]:
    """Findings whose latest action was carried out (and not undone since): drawn as remediated."""
    latest: dict[int, RemediationAction] = {}
    for action in actions:
        if action.finding_id:
            latest[action.finding_id] = action
    return {pk for pk, action in latest.items() if action.status == RemediationAction.Status.COMPLETED}


def key_findings(findings: list[Finding], actions: list[RemediationAction]) -> list[dict]:
    """The malicious and suspicious findings, each with what was done or proposed about it."""
    by_finding: dict[int, RemediationAction] = {}
    for action in actions:
        if action.finding_id:
            by_finding[action.finding_id] = action
    return [
        {"finding": f, "action": by_finding.get(f.pk)} for f in findings if f.verdict != Finding.Verdict.CLEAN
    ]


# ------------------------------------------------------------------------------------------------ clusters


@dataclass
class ClusterRow:
    cluster: MailCluster
    post_compromise: bool
    external: bool

    @property
    def worth_a_look(self) -> bool:
        """Shown even when clean: sent outside after the compromise began (a lure the analyzers missed)."""
        return self.cluster.verdict != Finding.Verdict.CLEAN or (self.post_compromise and self.external)


def compromise_start(alerts: list[Alert]) -> datetime | None:
    """When the compromise began, as far as the alerts say: the earliest first activity."""
    return min((a.first_activity_at for a in alerts), default=None)


def cluster_rows(investigation: Investigation, alerts: list[Alert]) -> list[ClusterRow]:
    """Clusters by verdict, then post-compromise first, external first, most external copies, newest."""
    start = compromise_start(alerts)
    rows = [
        ClusterRow(
            c, post_compromise=start is not None and c.last_at >= start, external=c.external_recipients > 0
        )
        for c in investigation.clusters.all()
    ]
    rows.sort(
        key=lambda r: (
            VERDICT_ORDER.get(r.cluster.verdict, 3),
            not r.post_compromise,
            not r.external,
            -r.cluster.external_recipients,
            -r.cluster.last_at.timestamp(),
        )
    )
    return rows


def cluster_messages(cluster: MailCluster) -> list[MessageEvent]:
    ids = list(cluster.event_ids or [])[:CLUSTER_MESSAGES_CAP]
    return list(
        MessageEvent.objects.filter(tenant_id=cluster.investigation.tenant_id, event_id__in=ids).order_by(
            "time", "id"
        )
    )


# ------------------------------------------------------------------------------------------------ log


@dataclass
class RunGroup:
    number: int
    runs: list
    started_at: datetime | None
    findings: int
    failed: int


def runs_by_number(investigation: Investigation) -> list[RunGroup]:
    """Analyzer runs grouped by run number, the latest first."""
    runs = sorted(
        investigation.runs.all(),
        key=lambda r: (-r.run_number, r.started_at or datetime.min.replace(tzinfo=UTC)),
    )
    groups = []
    for number, grouped in groupby(runs, key=lambda r: r.run_number):
        items = list(grouped)
        groups.append(
            RunGroup(
                number=number,
                runs=items,
                started_at=min((r.started_at for r in items if r.started_at), default=None),
                findings=sum(r.findings or 0 for r in items),
                failed=sum(1 for r in items if r.outcome == "failed"),
            )
        )
    return groups


# ------------------------------------------------------------------------------------------------ tabs


def graph_urls(
    investigation: Investigation,
    alerts: Iterable[Alert],
    findings: Iterable[Finding],
    actions: Iterable[RemediationAction],
) -> dict[str, str]:
    """Every node of the graph is a link: alerts to their page, the user to the mailbox, entities to the
    evidence, actions to their row of the overview, the result to the overview."""
    overview = tab_url(investigation.pk, "overview")
    evidence = tab_url(investigation.pk, "evidence")
    urls = {f"alert-{a.pk}": reverse("console:alert_detail", args=[a.pk]) for a in alerts}
    urls |= {f"finding-{f.pk}": f"{evidence}#finding-{f.pk}" for f in findings}
    urls |= {f"action-{a.pk}": f"{overview}#action-{a.pk}" for a in actions}
    urls["mailbox"] = optional_url("console:mailbox_detail", investigation.mailbox_id) or overview
    urls["result"] = overview
    urls["alert-none"] = overview
    urls["more-alerts"] = tab_url(investigation.pk, "alerts")
    urls["more-entities"] = evidence
    urls["more-actions"] = overview
    return urls


def tab_context(investigation: Investigation, tab: str) -> dict:
    """What ``tab`` shows (the frame's counts come from :func:`frame_context`)."""
    if tab == "overview":
        findings = findings_of(investigation)
        actions = actions_of(investigation)
        return {"key_findings": key_findings(findings, actions), "actions": actions}
    if tab == "graph":
        alerts, findings, actions = (
            alerts_of(investigation),
            findings_of(investigation),
            actions_of(investigation),
        )
        return {
            "alerts": alerts,
            "graph": build_graph(
                investigation,
                alerts=alerts,
                findings=findings,
                actions=actions,
                urls=graph_urls(investigation, alerts, findings, actions),
                remediated=remediated_finding_ids(actions),
            ),
        }
    if tab == "alerts":
        return {"alerts": alerts_of(investigation)}
    if tab == "mailbox":
        mailbox = investigation.mailbox
        return {
            "mailbox_url": optional_url("console:mailbox_detail", mailbox.pk),
            "forwarding": MailboxForwarding.objects.filter(mailbox=mailbox).first(),
            "inbox_rules": list(InboxRule.objects.present().for_mailbox(mailbox)),
            "delegations": list(Delegation.objects.present().for_mailbox(mailbox)),
        }
    if tab == "evidence":
        return {"findings": findings_of(investigation)}
    if tab == "clusters":
        rows = cluster_rows(investigation, alerts_of(investigation))
        return {
            "cluster_rows": [r for r in rows if r.worth_a_look],
            "clean_rows": [r for r in rows if not r.worth_a_look],
            "cluster_count": len(rows),
        }
    if tab == "log":
        return {"run_groups": runs_by_number(investigation)}
    if tab == "history":
        action_ids = [str(pk) for pk in investigation.actions.values_list("pk", flat=True)]
        return {
            "history": AuditEvent.objects.filter(
                Q(target_type=Investigation._meta.label_lower, target_id=str(investigation.pk))
                | Q(target_type=RemediationAction._meta.label_lower, target_id__in=action_ids)
            )[:HISTORY_CAP]
        }
    raise ValueError(tab)
