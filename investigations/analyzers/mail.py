"""Analyzers 2–4 over the user's sent mail: sending anomaly, sent malware / phish / spam, mail clusters.

They share one scan of the user's sent messages (``Context._sent``: columns only, no recipient lists; a user
with 10,000 messages is one streamed query), so all three cost a few queries whatever the volume.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from alerts.models import AlertEvidence, AlertPolicy
from mailflow.models import MessageEvent
from restricted_users.models import Restriction

from ..models import Finding, MailCluster, RemediationAction
from .base import BASELINE, AnalyzerResult, Context, Risk, SentMessage, short_hash

V = MessageEvent.Verdict
MALICIOUS_VERDICTS = (V.PHISH, V.MALWARE)
SPAMMY_VERDICTS = (V.SPAM, V.BULK)

# Sending anomaly thresholds (DESIGN section 6, against the user's own previous 7 days).
SPIKE_FACTOR = 3
MESSAGE_FLOOR = 50
RECIPIENT_FLOOR = 100
EXTERNAL_SHARE_JUMP = 0.30
EXTERNAL_SHARE_MIN_RECIPIENTS = 20
NEW_DOMAIN_FLOOR = 10

# Sent spam: at least this many spam messages in 7 days, and at least this share of what the user sent.
SPAM_MIN_COUNT = 10
SPAM_MIN_SHARE = 0.10

# Mail clusters: how many clean clusters are kept as rows (the rest fold into one "other clean mail" row);
# a cluster is a cause of a sending-limit breach when it holds this share of the breach's recipients.
CLEAN_CLUSTERS_KEPT = 50
# A spam / bulk majority makes a cluster suspicious from this many such messages (a stray bulk mail is noise).
SPAMMY_CLUSTER_MIN = 5
BREACH_CAUSE_SHARE = 0.10
EVENT_IDS_KEPT = 10_000


# ---------------------------------------------------------------------------------------------- 2. anomaly


def sending_anomaly(ctx: Context) -> AnalyzerResult:
    """Sending anomaly: the current period (the last 24 h, back to the first alert at most 7 days) against the
    user's own 7 days before it.

    Rules, each a reason: messages above ``3 ×`` the busiest baseline day (per day of the period) and above
    50; recipients above ``3 ×`` the busiest baseline day and above 100; external share of recipients up by 30
    points or more (with at least 20 external recipients); 10 or more external domains not written to in the
    baseline. A user without baseline is measured against the floors only. Any reason → a *suspicious*
    finding on the user's sending (no action: a sending anomaly alone proposes nothing); none → *clean*.
    """
    name = "sending_anomaly"
    start = ctx.current_start
    current = ctx.sent_between(start)
    baseline = ctx.sent_between(start - BASELINE, start)
    baseline = [m for m in baseline if m.time < start]
    days = max(1.0, (ctx.until - start).total_seconds() / 86400)

    base = _sending_of(baseline, start)
    now = _sending_of(current, start)
    messages, recipients, external = now.messages, now.recipients, now.external
    baseline_recipients = base.recipients
    busiest_messages, busiest_recipients = base.busiest_messages, base.busiest_recipients
    new_domains = sorted(now.domains - base.domains)
    share, baseline_share = now.external_share, base.external_share
    history = "the previous 7 days" if baseline else "no sending history in the previous 7 days"
    risk = _anomaly_risks(now, base, new_domains=len(new_domains), days=days, history=history)

    verdict = Finding.Verdict.SUSPICIOUS if risk else Finding.Verdict.CLEAN
    reasons = [r.reason for r in risk] or [
        f"{messages} messages to {recipients} recipients in {_span(days)}, in line with {history}"
    ]
    finding = ctx.record(
        name,
        Finding.EntityType.SENDING,
        ctx.mailbox.address,
        label=f"Sending of {ctx.mailbox.address}",
        verdict=verdict,
        reasons=reasons,
        risk=risk,
        data={
            "period": {"start": start.isoformat(), "end": ctx.until.isoformat()},
            "messages": messages,
            "recipients": recipients,
            "external_recipients": external,
            "external_share": round(share, 3),
            "baseline": {
                "messages": len(baseline),
                "recipients": baseline_recipients,
                "busiest_day_messages": busiest_messages,
                "busiest_day_recipients": busiest_recipients,
                "external_share": round(baseline_share, 3),
            },
            "new_external_domains": new_domains[:50],
            "new_external_domain_count": len(new_domains),
        },
    )
    summary = (
        f"{messages} messages / {recipients} recipients in {_span(days)} against {len(baseline)} / "
        f"{baseline_recipients} in the 7 days before: " + ("; ".join(r.reason for r in risk) or "no anomaly")
    )
    return AnalyzerResult(summary[:500], [finding])


@dataclass
class _Sending:
    """One span of a user's sent mail, counted: totals, its busiest day, the external domains written to."""

    messages: int = 0
    recipients: int = 0
    external: int = 0
    busiest_messages: int = 0
    busiest_recipients: int = 0
    domains: set[str] = field(default_factory=set)

    @property
    def external_share(self) -> float:
        return self.external / self.recipients if self.recipients else 0.0


def _sending_of(sent: list[SentMessage], start: datetime) -> _Sending:
    """Count ``sent``, its days numbered back from ``start``."""
    per_day_messages: Counter[int] = Counter()
    per_day_recipients: Counter[int] = Counter()
    counted = _Sending(messages=len(sent))
    for m in sent:
        day = int((start - m.time).total_seconds() // 86400)
        per_day_messages[day] += 1
        per_day_recipients[day] += m.recipients
        counted.external += m.external
        counted.domains.update(m.external_domains)
    counted.recipients = sum(per_day_recipients.values())
    counted.busiest_messages = max(per_day_messages.values(), default=0)
    counted.busiest_recipients = max(per_day_recipients.values(), default=0)
    return counted


def _anomaly_risks(
    now: _Sending, base: _Sending, *, new_domains: int, days: float, history: str
) -> list[Risk]:
    """The rules of :func:`sending_anomaly`, each broken one a reason."""
    risk: list[Risk] = []
    spikes = (
        ("", now.messages, "messages", base.busiest_messages, MESSAGE_FLOOR),
        ("to ", now.recipients, "recipients", base.busiest_recipients, RECIPIENT_FLOOR),
    )
    for to, count, noun, busiest, floor in spikes:
        if count > max(floor, SPIKE_FACTOR * busiest * days):
            reason = f"Sent {to}{count} {noun} in {_span(days)}; busiest day of {history}: {busiest}"
            risk.append(Risk(10, reason))
    share, baseline_share = now.external_share, base.external_share
    if now.external >= EXTERNAL_SHARE_MIN_RECIPIENTS and share - baseline_share >= EXTERNAL_SHARE_JUMP:
        risk.append(
            Risk(5, f"External share of recipients {share:.0%}, against {baseline_share:.0%} in {history}")
        )
    if new_domains >= NEW_DOMAIN_FLOOR:
        risk.append(Risk(5, f"Wrote to {new_domains} external domains not written to in {history}"))
    return risk


def _span(days: float) -> str:
    return "24 h" if days <= 1.0 else f"{days:.1f} days"


# ---------------------------------------------------------------------------------------------- 3. verdicts


def sent_malware(ctx: Context) -> AnalyzerResult:
    """Sent malware / phish / spam over the last 7 days, by the platform's verdicts.

    Rule: any message verdicted phish or malware → a *malicious* finding per verdict (30 points, 45 from 10
    messages on). Spam → a *suspicious* finding when at least 10 messages and 10% of what the user sent are
    spam (15 points). Findings name the messages (up to 50 event ids) and the recipients they reached.
    """
    name = "sent_malware"
    sent = ctx.sent_between(ctx.since)
    by_verdict: dict[str, list[SentMessage]] = defaultdict(list)
    for m in sent:
        by_verdict[m.verdict].append(m)
    findings = []
    for verdict in (*MALICIOUS_VERDICTS, V.SPAM):
        messages = by_verdict.get(verdict, [])
        if not messages:
            continue
        count = len(messages)
        internal = sum(m.internal for m in messages)
        external = sum(m.external for m in messages)
        if verdict in MALICIOUS_VERDICTS:
            finding_verdict = Finding.Verdict.MALICIOUS
            points = 45 if count >= 10 else 30
        elif count >= SPAM_MIN_COUNT and count >= SPAM_MIN_SHARE * len(sent):
            finding_verdict = Finding.Verdict.SUSPICIOUS
            points = 15
        else:
            continue
        label = V(verdict).label.lower()
        reason = (
            f"Sent {count} message{'s' if count != 1 else ''} verdicted {label} "
            f"({count / len(sent):.0%} of the mail sent in 7 days) to {internal} internal and {external} "
            f"external recipients"
        )
        findings.append(
            ctx.record(
                name,
                Finding.EntityType.SENT_MAIL,
                verdict,
                label=f"Sent mail verdicted {label}",
                verdict=finding_verdict,
                reasons=[reason],
                risk=[Risk(points, reason)],
                data={
                    "verdict": verdict,
                    "messages": count,
                    "internal_recipients": internal,
                    "external_recipients": external,
                    "first_at": messages[0].time.isoformat(),
                    "last_at": messages[-1].time.isoformat(),
                    "event_ids": [m.event_id for m in messages[:50]],
                },
            )
        )
    counts = Counter(m.verdict or "unknown" for m in sent)
    summary = f"{len(sent)} messages sent in 7 days: " + (
        ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none"
    )
    return AnalyzerResult(summary, findings)


# ---------------------------------------------------------------------------------------------- 4. clusters


@dataclass
class _Cluster:
    basis: str
    key: str
    label: str
    messages: list[SentMessage] = field(default_factory=list)
    breach_recipients: int = 0

    @property
    def fingerprint(self) -> str:
        return f"{self.basis}:{short_hash(self.key, 40)}"


def mail_clusters(ctx: Context) -> AnalyzerResult:
    """Mail clusters: the user's sent mail of the last 7 days grouped by URL, else body fingerprint, else
    normalised subject.

    Grouping: a message joins the cluster of its first URL outside the tenant's domains (else its first URL;
    scheme, ``www.``, query and fragment dropped, so per-recipient tracking tokens do not split a campaign);
    without a URL, of its ``body_hash`` when another message shares it (a unique body groups nothing); else of
    its subject with reply prefixes stripped, digit runs folded and case ignored.

    Verdicts: *malicious* when any message is phish or malware; *suspicious* when spam and bulk are the
    majority (at least 5 such messages), or when the cluster holds at least 10% of the recipients of a
    sending-limit breach (the messages a sending-limit alert names, or those inside a restriction's breach
    window): these clusters show which mail caused a restriction; else *clean*. Recipient counts are
    deliveries (internal / external).

    Rows: one ``MailCluster`` per malicious / suspicious cluster and the 50 largest clean ones (the rest are
    summed into one "Other clean mail" row), updated in place by fingerprint on a re-run. Findings: one per
    malicious / suspicious cluster. Proposals: ``soft_delete_messages`` for every *malicious* cluster, and
    every cluster made suspicious by spam (issue 21), that reached internal recipients, targeting its event
    ids and internal recipient count. A cluster grouped by URL or body is one campaign, so all its messages
    are targeted (copies the filter let through included); one grouped only by subject targets just its phish
    / malware (and, for a spam cluster, spam / bulk) messages, since a subject is too weak a fingerprint to
    delete unverdicted mail. A malicious cluster sent only outside proposes nothing: there is
    nothing here to delete.
    """
    name = "mail_clusters"
    sent = ctx.sent_between(ctx.since)
    breach_ids, windows = _breach_evidence(ctx)
    clusters = _group_clusters(ctx, sent, breach_ids, windows)
    total_breach = sum(c.breach_recipients for c in clusters.values())

    judged: list[tuple[_Cluster, str, list[str]]] = []
    for cluster in clusters.values():
        verdict, reasons = _judge(cluster, total_breach)
        judged.append((cluster, verdict, reasons))
    judged.sort(key=lambda item: (_RANK[item[1]], -len(item[0].messages), item[0].fingerprint))
    kept = [item for item in judged if item[1] != Finding.Verdict.CLEAN]
    clean = [item for item in judged if item[1] == Finding.Verdict.CLEAN]
    kept += clean[:CLEAN_CLUSTERS_KEPT]
    rest = [m for cluster, _, _ in clean[CLEAN_CLUSTERS_KEPT:] for m in cluster.messages]

    rows = _cluster_rows(ctx, kept, rest)
    saved = _save_clusters(ctx, rows)

    findings = []
    actions = []
    for cluster, verdict, reasons in kept:
        if verdict == Finding.Verdict.CLEAN:
            continue
        finding, action = _report_cluster(ctx, name, cluster, verdict, reasons, saved[cluster.fingerprint])
        findings.append(finding)
        if action is not None:
            actions.append(action)
    counts = Counter(verdict for _, verdict, _ in judged)
    summary = (
        f"{len(sent)} messages in {len(clusters)} clusters: {counts[Finding.Verdict.MALICIOUS]} malicious, "
        f"{counts[Finding.Verdict.SUSPICIOUS]} suspicious, {counts[Finding.Verdict.CLEAN]} clean"
    )
    return AnalyzerResult(summary, findings, actions)


def _group_clusters(
    ctx: Context, sent: list[SentMessage], breach_ids: set[str], windows: list[tuple[datetime, datetime]]
) -> dict[tuple[str, str], _Cluster]:
    """Group the sent mail (see :func:`mail_clusters`), counting each cluster's recipients of a breach."""
    shared_bodies = {h for h, n in Counter(m.body_hash for m in sent if m.body_hash).items() if n > 1}
    clusters: dict[tuple[str, str], _Cluster] = {}
    for m in sent:
        basis, key, label = _cluster_key(m, ctx.accepted_domains, shared_bodies)
        cluster = clusters.get((basis, key))
        if cluster is None:
            cluster = clusters[(basis, key)] = _Cluster(basis, key, label)
        cluster.messages.append(m)
        if m.event_id in breach_ids or any(start <= m.time <= end for start, end in windows):
            cluster.breach_recipients += m.recipients
    return clusters


def _cluster_rows(
    ctx: Context, kept: list[tuple[_Cluster, str, list[str]]], rest: list[SentMessage]
) -> list[MailCluster]:
    """The ``MailCluster`` rows to save: the kept clusters, then the rest of the clean mail summed in one."""
    rows = [
        _row(
            ctx,
            cluster.fingerprint,
            cluster.basis,
            cluster.label,
            verdict,
            reasons,
            cluster.messages,
            cluster.breach_recipients,
        )
        for cluster, verdict, reasons in kept
    ]
    if rest:
        rest.sort(key=lambda m: m.time)
        rows.append(
            _row(
                ctx,
                "other:clean",
                "other",
                "Other clean mail",
                Finding.Verdict.CLEAN,
                ["Smaller clusters of clean mail, summed"],
                rest,
                0,
            )
        )
    return rows


def _report_cluster(
    ctx: Context, name: str, cluster: _Cluster, verdict: str, reasons: list[str], row: MailCluster
) -> tuple[Finding, RemediationAction | None]:
    """A suspicious or malicious cluster's finding and, where it reached internal mailboxes and is a campaign
    worth deleting, its ``soft_delete_messages`` proposal."""
    spam = verdict == Finding.Verdict.SUSPICIOUS and _spammy(cluster)
    points = 10 if (verdict == Finding.Verdict.MALICIOUS or spam) and row.internal_recipients else 5
    finding = ctx.record(
        name,
        Finding.EntityType.MAIL_CLUSTER,
        cluster.fingerprint,
        label=f"{row.label} ({row.message_count} messages)",
        verdict=verdict,
        reasons=reasons,
        risk=[Risk(points, f"{verdict.capitalize()} mail cluster “{row.label[:80]}”: {reasons[0]}")],
        data={
            "cluster_id": row.pk,
            "basis": row.basis,
            "messages": row.message_count,
            "internal_recipients": row.internal_recipients,
            "external_recipients": row.external_recipients,
            "breach_recipients": row.breach_recipients,
            "verdict_counts": row.verdict_counts,
        },
    )
    targeted = _soft_delete_targets(cluster, spam=spam)
    copies = sum(m.internal for m in targeted)
    if (verdict == Finding.Verdict.MALICIOUS or spam) and copies:
        mailboxes = _internal_mailboxes(ctx, targeted)
        action = ctx.propose(
            RemediationAction.Type.SOFT_DELETE_MESSAGES,
            f"cluster:{row.fingerprint}",
            target={
                "mailbox_id": ctx.mailbox.pk,
                "cluster_id": row.pk,
                "fingerprint": row.fingerprint,
                "event_ids": [m.event_id for m in targeted],
                "message_count": len(targeted),
                "internal_copies": copies,
                "internal_mailboxes": mailboxes,
            },
            label=(
                f"{_count(len(targeted), 'message')} “{row.label[:120]}”: "
                f"{_count(copies, 'copy', 'copies')} in "
                f"{_count(mailboxes, 'internal mailbox', 'internal mailboxes')}"
            ),
            finding=finding,
        )
        return finding, action
    return finding, None


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _internal_mailboxes(ctx: Context, messages: list[SentMessage]) -> int:
    """How many distinct internal mailboxes received these messages (a copy count says nothing of it)."""
    addresses: set[str] = set()
    ids = [m.event_id for m in messages]
    for chunk in range(0, len(ids), 2000):
        rows = MessageEvent.objects.filter(
            tenant=ctx.tenant, sender=ctx.mailbox, event_id__in=ids[chunk : chunk + 2000]
        ).values_list("recipients", flat=True)
        for recipients in rows:
            addresses.update(r for r in recipients or () if ctx.is_internal(r))
    return len(addresses)


def _soft_delete_targets(cluster: _Cluster, *, spam: bool = False) -> list[SentMessage]:
    """The messages a soft delete of a malicious or spam cluster takes back (see :func:`mail_clusters`)."""
    if cluster.basis in ("url", "body"):
        return cluster.messages
    verdicts = (*MALICIOUS_VERDICTS, *SPAMMY_VERDICTS) if spam else MALICIOUS_VERDICTS
    return [m for m in cluster.messages if m.verdict in verdicts]


def _spammy(cluster: _Cluster) -> bool:
    """A cluster that spam and bulk make suspicious (a majority, at least ``SPAMMY_CLUSTER_MIN``)."""
    spammy = sum(1 for m in cluster.messages if m.verdict in SPAMMY_VERDICTS)
    return spammy >= SPAMMY_CLUSTER_MIN and spammy * 2 > len(cluster.messages)


_RANK: dict[str, int] = {
    Finding.Verdict.MALICIOUS: 0,
    Finding.Verdict.SUSPICIOUS: 1,
    Finding.Verdict.CLEAN: 2,
}
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|vs|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def normalise_subject(subject: str) -> str:
    """Lowercase, reply / forward prefixes stripped, digit runs folded to ``#``, whitespace collapsed."""
    subject = _REPLY_PREFIX.sub("", subject or "")
    subject = _DIGITS.sub("#", subject.lower())
    return _SPACES.sub(" ", subject).strip()


def normalise_url(url: str) -> tuple[str, str]:
    """``(host, host/path)`` of a URL: lowercased; no scheme, ``www.``, query, fragment, trailing slash."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    host = (parts.hostname or "").lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    return host, f"{host}{path}"


def _cluster_key(m: SentMessage, accepted_domains: set[str], shared_bodies: set[str]) -> tuple[str, str, str]:
    if m.urls:
        normalised = [normalise_url(u) for u in m.urls]
        outside = [n for n in normalised if n[0] and not _in_domains(n[0], accepted_domains)]
        host, key = (outside or normalised)[0]
        if key:
            return "url", key, key
    if m.body_hash in shared_bodies:
        subject = (m.subject or "(no subject)").strip()
        return "body", m.body_hash, f"{subject[:200]} (body {m.body_hash[:12]})"
    subject = normalise_subject(m.subject)
    return "subject", subject, (m.subject or "(no subject)").strip()[:300] or "(no subject)"


def _in_domains(host: str, domains: set[str]) -> bool:
    return any(host == d or host.endswith(f".{d}") for d in domains)


def _judge(cluster: _Cluster, total_breach: int) -> tuple[str, list[str]]:
    counts = Counter(m.verdict for m in cluster.messages)
    n = len(cluster.messages)
    bad = sum(counts[v] for v in MALICIOUS_VERDICTS)
    if bad:
        kinds = " / ".join(V(v).label.lower() for v in MALICIOUS_VERDICTS if counts[v])
        return Finding.Verdict.MALICIOUS, [f"{bad} of {n} messages verdicted {kinds}"]
    reasons = []
    spammy = sum(counts[v] for v in SPAMMY_VERDICTS)
    if spammy >= SPAMMY_CLUSTER_MIN and spammy * 2 > n:
        reasons.append(f"{spammy} of {n} messages verdicted spam or bulk")
    if total_breach and cluster.breach_recipients >= BREACH_CAUSE_SHARE * total_breach:
        reasons.append(
            f"{cluster.breach_recipients} of the {total_breach} recipients that exceeded the sending limit"
        )
    if reasons:
        return Finding.Verdict.SUSPICIOUS, reasons
    return Finding.Verdict.CLEAN, [f"{n} message{'s' if n != 1 else ''}, no bad verdict"]


def _row(
    ctx: Context,
    fingerprint: str,
    basis: str,
    label: str,
    verdict: str,
    reasons: list[str],
    messages: list[SentMessage],
    breach_recipients: int,
) -> MailCluster:
    counts = Counter(m.verdict or "unknown" for m in messages)
    return MailCluster(
        investigation=ctx.investigation,
        fingerprint=fingerprint,
        basis=basis,
        label=label[:500],
        verdict=verdict,
        message_count=len(messages),
        internal_recipients=sum(m.internal for m in messages),
        external_recipients=sum(m.external for m in messages),
        verdict_counts=dict(sorted(counts.items())),
        first_at=messages[0].time,
        last_at=messages[-1].time,
        event_ids=[m.event_id for m in messages[:EVENT_IDS_KEPT]],
        reasons=reasons,
        breach_recipients=breach_recipients,
    )


# What a run recomputes of a cluster it saw again: every column but the cluster's identity.
_CLUSTER_FIELDS = [
    f.name
    for f in MailCluster._meta.concrete_fields
    if not f.primary_key and f.name not in ("investigation", "fingerprint")
]


def _save_clusters(ctx: Context, rows: list[MailCluster]) -> dict[str, MailCluster]:
    """Upsert the clusters by fingerprint (three queries). Clusters of an earlier run that this run did not
    see (mail that left the look-back) are kept: they are what the investigation found then."""
    existing = dict(
        MailCluster.objects.filter(
            investigation=ctx.investigation, fingerprint__in=[r.fingerprint for r in rows]
        ).values_list("fingerprint", "pk")
    )
    updates, creates = [], []
    for row in rows:
        if row.fingerprint in existing:
            row.pk = existing[row.fingerprint]
            updates.append(row)
        else:
            creates.append(row)
    if updates:
        MailCluster.objects.bulk_update(updates, _CLUSTER_FIELDS, batch_size=500)
    if creates:
        MailCluster.objects.bulk_create(creates, batch_size=500)
    return {row.fingerprint: row for row in rows}


def _breach_evidence(ctx: Context) -> tuple[set[str], list[tuple[datetime, datetime]]]:
    """The messages behind the user's sending-limit breaches in the look-back: those named as evidence by a
    sending-limit alert, and the windows recorded on restrictions (placed by the policy service, say)."""
    ids = set(
        AlertEvidence.objects.filter(
            alert__mailbox=ctx.mailbox,
            alert__policy__kind=AlertPolicy.Kind.SENDING_LIMIT,
            kind=AlertEvidence.Kind.MESSAGE,
            at__gte=ctx.since,
        ).values_list("event_id", flat=True)
    )
    windows = []
    for reason in Restriction.objects.filter(mailbox=ctx.mailbox, placed_at__gte=ctx.since).values_list(
        "reason", flat=True
    ):
        if not isinstance(reason, dict):
            continue
        try:
            start = datetime.fromisoformat(reason["window_start"])
            end = datetime.fromisoformat(reason["window_end"])
        except (KeyError, TypeError, ValueError):
            continue
        windows.append((start, end))
    return ids, windows
