"""What every analyzer shares: the run's context (the user, the time frame, cached reads), the result type,
and the two writes analyzers make — findings upserted by entity, actions proposed once per target.

An analyzer is ``(ctx: Context) -> AnalyzerResult``. It reads with a handful of queries, records its findings
with :meth:`Context.record` (a re-run updates the finding of the same entity instead of adding one) and
proposes actions with :meth:`Context.propose` (one per (type, target) per investigation; an action already
decided is never proposed again). Each finding carries its risk points in ``data["risk"]`` as
``[{"points": n, "reason": "…"}]``; the verdict analyzer adds them up, so every point names its reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from mailboxes.models import AcceptedDomain, Mailbox
from mailflow.models import MessageEvent

from ..models import ACTION_EXPIRY, Finding, Investigation, RemediationAction

# "The last 7 days" of DESIGN section 6: the look-back of every analyzer.
LOOKBACK = timedelta(days=7)
# The sending anomaly compares the latest day against the user's own 7 days before it.
CURRENT_PERIOD = timedelta(hours=24)
BASELINE = timedelta(days=7)


@dataclass(frozen=True)
class Risk:
    """Points added to the investigation's risk score, and why."""

    points: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "reason": self.reason}


@dataclass
class AnalyzerResult:
    """What one analyzer did: a one-line summary, the findings it recorded and the actions it proposed."""

    summary: str
    findings: list[Finding] = field(default_factory=list)
    actions: list[RemediationAction] = field(default_factory=list)


@dataclass(frozen=True)
class SentMessage:
    """The columns of a sent message the mail analyzers read (no recipient lists: counts are stored)."""

    event_id: str
    time: datetime
    verdict: str
    recipients: int
    internal: int
    external: int
    external_domains: tuple[str, ...]
    subject: str
    urls: tuple[str, ...]
    body_hash: str


def short_hash(value: str, length: int = 24) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


class Context:
    """One run of the playbook over one user: the investigation, the clock, and reads shared by analyzers.

    ``until`` is the run's "now"; ``since`` = ``until`` - 7 days. Reads are cached for the run, so the mail
    analyzers share one scan of the user's sent mail.
    """

    def __init__(self, investigation: Investigation, *, now: datetime, run_number: int) -> None:
        self.investigation = investigation
        self.mailbox: Mailbox = investigation.mailbox
        self.tenant = investigation.tenant
        self.until = now
        self.since = now - LOOKBACK
        self.run_number = run_number

    # ------------------------------------------------------------------------------------------ reads

    @cached_property
    def accepted_domains(self) -> set[str]:
        return AcceptedDomain.objects.domains_of(self.tenant)

    @cached_property
    def current_start(self) -> datetime:
        """Start of the sending anomaly's current period: the last 24 h, stretched back to the first activity
        of the investigation's alerts (at most 7 days) so that a later re-run still looks at the trouble."""
        first = self.investigation.alerts.order_by("first_activity_at").values_list(
            "first_activity_at", flat=True
        )
        start = self.until - CURRENT_PERIOD
        earliest = first.first()
        if earliest is not None:
            start = max(self.since, min(start, earliest))
        return start

    @cached_property
    def scan_start(self) -> datetime:
        """The oldest sent mail any mail analyzer needs: the anomaly's baseline or the 7-day look-back."""
        return min(self.since, self.current_start - BASELINE)

    @cached_property
    def _sent(self) -> list[SentMessage]:
        rows = (
            MessageEvent.objects.filter(
                tenant=self.tenant, sender=self.mailbox, time__gte=self.scan_start, time__lte=self.until
            )
            .order_by("time", "event_id")
            .values_list(
                "event_id",
                "time",
                "verdict",
                "recipient_count",
                "internal_count",
                "external_count",
                "external_domains",
                "subject",
                "urls",
                "body_hash",
            )
            .iterator(chunk_size=5000)
        )
        return [
            SentMessage(
                event_id,
                at,
                verdict or "",
                recipients,
                internal,
                external,
                tuple(domains or ()),
                subject or "",
                tuple(u for u in (urls or ()) if isinstance(u, str)),
                body_hash or "",
            )
            for (
                event_id,
                at,
                verdict,
                recipients,
                internal,
                external,
                domains,
                subject,
                urls,
                body_hash,
            ) in rows
        ]

    def sent_between(self, start: datetime, end: datetime | None = None) -> list[SentMessage]:
        """The user's sent mail with event time in ``[start, end]`` (``end`` defaults to ``until``), oldest
        first. ``start`` must not be before ``scan_start``."""
        end = end or self.until
        return [m for m in self._sent if start <= m.time <= end]

    def is_internal(self, address: str) -> bool:
        return address.rsplit("@", 1)[-1].lower() in self.accepted_domains

    # ------------------------------------------------------------------------------------------ writes

    def record(
        self,
        analyzer: str,
        entity_type: str,
        entity_key: str,
        *,
        label: str,
        verdict: str,
        reasons: list[str],
        risk: list[Risk] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Finding:
        """Create or update the finding of one entity (unique per investigation, entity type and key)."""
        if len(entity_key) > 300:
            entity_key = f"{entity_key[:250]}#{short_hash(entity_key)}"
        payload = {**(data or {}), "risk": [r.as_dict() for r in risk or [] if r.points > 0]}
        finding, _ = Finding.objects.update_or_create(
            investigation=self.investigation,
            entity_type=entity_type,
            entity_key=entity_key,
            defaults={
                "analyzer": analyzer,
                "entity_label": label[:500],
                "verdict": verdict,
                "reasons": reasons,
                "data": payload,
            },
        )
        return finding

    def propose(
        self,
        action_type: str,
        target_key: str,
        *,
        target: dict[str, Any],
        label: str,
        finding: Finding,
        present_now: bool = False,
    ) -> RemediationAction | None:
        """Propose an action for a threat this run found; at most one *open* action per (investigation, type,
        target key).

        A still-Pending proposal is refreshed (target, label, finding; its clock is kept); one Approved,
        Running or waiting for a manual step is left to finish (None). Otherwise a new Pending proposal is
        made, whatever became of older ones (rejected, expired, failed, undone), because the threat is
        still there — except after a Completed one: the clean-up was done, so it is proposed again only when
        the analyzer reads the entity as present in the directory now (``present_now``: the forwarding, rule
        or delegation came back). Mail clusters and account-wide actions are history, not state: a completed
        one is not proposed again. New proposals expire 7 days after they were made.
        """
        if len(target_key) > 300:
            target_key = f"{target_key[:250]}#{short_hash(target_key)}"
        earlier = RemediationAction.objects.filter(
            investigation=self.investigation, action_type=action_type, target_key=target_key
        )
        current = earlier.filter(status__in=RemediationAction.OPEN_STATUSES).first()
        if current is not None:
            if current.status != RemediationAction.Status.PENDING or current.is_overdue(self.until):
                return None
            current.target = target
            current.target_label = label[:500]
            current.finding = finding
            current.save(update_fields=["target", "target_label", "finding"])
            return current
        if not present_now and earlier.filter(status=RemediationAction.Status.COMPLETED).exists():
            return None
        return RemediationAction.objects.create(
            tenant=self.tenant,
            investigation=self.investigation,
            finding=finding,
            action_type=action_type,
            target=target,
            target_label=label[:500],
            target_key=target_key,
            status=RemediationAction.Status.PENDING,
            proposed_at=self.until,
            expires_at=self.until + ACTION_EXPIRY,
        )
