"""Reads behind the Mailboxes pages: the list's sent-mail annotations and sorts, the rule / forwarding /
delegation indicators (internal or external by the tenant's accepted domains), and the detail page's sections
and directory history. Every read is a fixed number of queries, whatever the number of rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailboxes.addresses import FORWARD_ACTIONS, addresses_in, is_external, rule_forward_targets
from mailboxes.filtersets import DEFAULT_ORDER_LABEL, MailboxFilterSet, NullsLastOrderingFilter
from mailboxes.models import AcceptedDomain, Delegation, DirectoryChange, InboxRule, Mailbox, SignIn
from mailflow.models import MessageEvent

SIGN_INS_SHOWN = 50
SENT_PER_PAGE = 50
HISTORY_CAP = 200
LEGACY_CLIENT_APPS = tuple(str(app) for app in SignIn.LEGACY_CLIENT_APPS)
BAD_VERDICTS = tuple(str(verdict) for verdict in MessageEvent.BAD_VERDICTS)

# Labels of the documented rule conditions and actions (DESIGN section 4); others are shown by their key.
CONDITION_LABELS = {
    "subject_contains": "Subject contains",
    "body_contains": "Body contains",
    "from": "From",
}
ACTION_LABELS = {
    "forward_to": "Forward to",
    "redirect_to": "Redirect to",
    "move_to_folder": "Move to folder",
    "delete": "Delete",
    "mark_as_read": "Mark as read",
}


def _label(key: str, labels: dict[str, str]) -> str:
    return labels.get(key, key.replace("_", " ").capitalize())


def _text(value: Any) -> str:
    """A condition or action value as plain text (the template escapes it)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_text(item)}" for key, item in value.items())
    return "" if value is None else str(value)


# --- the list -----------------------------------------------------------------------------------------------


def _sent_since(hours: int) -> Coalesce:
    """Messages the mailbox sent in the last ``hours`` hours: a correlated count on the sender/time index."""
    since = timezone.now() - timedelta(hours=hours)
    counted = (
        MessageEvent.objects.filter(
            tenant_id=OuterRef("tenant_id"), sender_id=OuterRef("pk"), time__gte=since
        )
        .order_by()
        .values("sender_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def with_sent_counts(queryset: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """Annotate ``sent_24h`` and ``sent_7d``: messages sent in the last 24 hours / 7 days."""
    return queryset.annotate(sent_24h=_sent_since(24), sent_7d=_sent_since(24 * 7))


def mailbox_list_queryset() -> QuerySet[Mailbox]:
    """The list's rows: tenant, current forwarding, present rules and delegations, sent counts (fixed
    queries: the page, two prefetches)."""
    return with_sent_counts(
        Mailbox.objects.select_related("tenant")
        .annotate(forwarding_to=F("forwarding__forward_to"))
        .prefetch_related(
            Prefetch(
                "inbox_rules", InboxRule.objects.present().order_by("name", "pk"), to_attr="present_rules"
            ),
            Prefetch(
                "delegations",
                Delegation.objects.present().order_by("delegate", "access"),
                to_attr="present_delegations",
            ),
        )
        .order_by("address", "pk")
    )


class MailboxListFilterSet(MailboxFilterSet):
    """The directory's filters plus the console's sorts on sent mail (messages in the last 24 h / 7 days)."""

    ordering = NullsLastOrderingFilter(
        fields=(*MailboxFilterSet.ORDERING_FIELDS, ("sent_24h", "sent_24h"), ("sent_7d", "sent_7d")),
        field_labels={
            **MailboxFilterSet.ORDERING_LABELS,
            "sent_24h": "Sent in 24 h",
            "sent_7d": "Sent in 7 days",
        },
        label="Sort",
        empty_label=DEFAULT_ORDER_LABEL,
    )


def accepted_domains_by_tenant(tenant_ids: Iterable[int] | None = None) -> dict[int, set[str]]:
    """Accepted domains per tenant id (one query; every tenant when ``tenant_ids`` is None)."""
    rows = AcceptedDomain.objects.all()
    if tenant_ids is not None:
        rows = rows.filter(tenant_id__in=set(tenant_ids))
    domains: dict[int, set[str]] = defaultdict(set)
    for tenant_id, domain in rows.values_list("tenant_id", "domain"):
        domains[tenant_id].add(domain)
    return domains


@dataclass(frozen=True)
class Target:
    """An address mail is sent on to, and whether it leaves the tenant."""

    address: str
    external: bool


@dataclass(frozen=True)
class Indicators:
    """What a list row says about a mailbox's rules, forwarding and delegations."""

    rule_count: int
    rule_targets: tuple[Target, ...]
    forwarding: Target | None
    delegation_count: int

    @property
    def external_rule_targets(self) -> tuple[Target, ...]:
        return tuple(t for t in self.rule_targets if t.external)

    @property
    def external_forwarding(self) -> bool:
        return self.forwarding is not None and self.forwarding.external


def _targets(addresses: Iterable[str], accepted: set[str]) -> tuple[Target, ...]:
    return tuple(Target(a, is_external(a, accepted)) for a in dict.fromkeys(addresses))


def indicators_for(mailbox: Mailbox, accepted: set[str]) -> Indicators:
    """Indicators from a row of :func:`mailbox_list_queryset` (prefetched, so no query)."""
    rules = mailbox.present_rules  # type: ignore[attr-defined]  # Prefetch(to_attr=...)
    forwarded = [
        address
        for rule in rules
        if rule.enabled
        for addresses in rule_forward_targets(rule.actions or {}).values()
        for address in addresses
    ]
    forwarding_to = mailbox.forwarding_to  # type: ignore[attr-defined]  # annotated by the queryset
    return Indicators(
        rule_count=len(rules),
        rule_targets=_targets(forwarded, accepted),
        forwarding=Target(forwarding_to, is_external(forwarding_to, accepted)) if forwarding_to else None,
        delegation_count=len(mailbox.present_delegations),  # type: ignore[attr-defined]  # to_attr
    )


def attach_indicators(mailboxes: Iterable[Mailbox], domains: dict[int, set[str]]) -> None:
    """Set ``mailbox.indicators`` on each row, with its tenant's accepted domains."""
    for mailbox in mailboxes:
        indicators = indicators_for(mailbox, domains.get(mailbox.tenant_id, set()))
        mailbox.indicators = indicators  # type: ignore[attr-defined]  # read by the template


# --- the detail ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleAction:
    """One action of a rule: a forward / redirect lists its targets, any other action its value in words."""

    label: str
    value: str
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True)
class RuleRow:
    """A present inbox rule as the detail page shows it."""

    rule: InboxRule
    conditions: tuple[tuple[str, str], ...]
    actions: tuple[RuleAction, ...]

    @property
    def forwards_externally(self) -> bool:
        """Enabled, and forwarding or redirecting outside the accepted domains."""
        return self.rule.enabled and any(t.external for action in self.actions for t in action.targets)


def _rule_actions(actions: dict[str, Any], accepted: set[str]) -> tuple[RuleAction, ...]:
    rows = []
    for key, value in (actions or {}).items():
        targets = rule_forward_targets({key: value}).get(key, [])
        if targets:
            rows.append(RuleAction(_label(key, ACTION_LABELS), "", _targets(targets, accepted)))
        else:
            rows.append(RuleAction(_label(key, ACTION_LABELS), _text(value)))
    return tuple(rows)


def rule_rows(rules: Iterable[InboxRule], accepted: set[str]) -> list[RuleRow]:
    """The rules with their conditions and actions in words, targets flagged internal / external."""
    return [
        RuleRow(
            rule,
            tuple((_label(k, CONDITION_LABELS), _text(v)) for k, v in (rule.conditions or {}).items()),
            _rule_actions(rule.actions, accepted),
        )
        for rule in rules
    ]


@dataclass(frozen=True)
class HistoryRow:
    """One directory change: when, what, and where it came from. ``name`` is the rule's name; ``targets`` the
    addresses involved (where a rule or the forwarding sends mail, or the delegate), flagged external or not;
    ``summary`` the rest of the state in words."""

    change: DirectoryChange
    name: str
    summary: str
    targets: tuple[Target, ...] = ()


def _rule_summary(state: dict[str, Any]) -> str:
    conditions = [
        f"{_label(k, CONDITION_LABELS)}: {_text(v)}" for k, v in (state.get("conditions") or {}).items()
    ]
    actions = [
        f"{_label(k, ACTION_LABELS)}: {_text(v)}"
        for k, v in (state.get("actions") or {}).items()
        if k not in FORWARD_ACTIONS
    ]
    parts = []
    if conditions:
        parts.append("If " + "; ".join(conditions))
    if actions:
        parts.append("; ".join(actions))
    if state.get("enabled", True) is False:
        parts.append("disabled")
    return ". ".join(parts)


def _history_row(change: DirectoryChange, accepted: set[str]) -> HistoryRow:
    state = change.state or {}
    if change.kind == DirectoryChange.Kind.INBOX_RULE:
        forwarded = rule_forward_targets(state.get("actions") or {})
        targets = [address for addresses in forwarded.values() for address in addresses]
        return HistoryRow(
            change, state.get("name") or change.key, _rule_summary(state), _targets(targets, accepted)
        )
    if change.kind == DirectoryChange.Kind.FORWARDING:
        targets = addresses_in(state.get("forward_to"))
        summary = "keeps a copy in the mailbox" if targets and state.get("keep_copy") else ""
        return HistoryRow(change, "", summary, _targets(targets, accepted))
    if change.kind == DirectoryChange.Kind.DELEGATION:
        access = state.get("access", "")
        label = Delegation.Access(access).label if access in Delegation.Access.values else access
        return HistoryRow(
            change, "", label, _targets(addresses_in(state.get("delegate") or change.key), accepted)
        )
    return HistoryRow(change, change.key, "")


def history_rows(mailbox: Mailbox, kind: str, accepted: set[str]) -> list[HistoryRow]:
    """The newest :data:`HISTORY_CAP` changes of one kind, newest first (one query)."""
    changes = DirectoryChange.objects.for_mailbox(mailbox).of_kind(kind).order_by("-at", "-id")[:HISTORY_CAP]
    return [_history_row(change, accepted) for change in changes]


@dataclass
class MailboxDetail:
    """Everything the detail page shows besides the alert and restriction panels."""

    mailbox: Mailbox
    accepted: set[str]
    rules: list[RuleRow] = field(default_factory=list)
    forwarding: Target | None = None
    forwarding_keep_copy: bool = False
    forwarding_changed_at: Any = None
    delegations: list[tuple[Delegation, bool]] = field(default_factory=list)
    rule_history: list[HistoryRow] = field(default_factory=list)
    forwarding_history: list[HistoryRow] = field(default_factory=list)
    delegation_history: list[HistoryRow] = field(default_factory=list)
    sign_ins: list[SignIn] = field(default_factory=list)
    sent: Page | None = None


def mailbox_detail(mailbox: Mailbox, *, sent_page: Any = 1) -> MailboxDetail:
    """Read the detail page's sections: current rules, forwarding and delegations with their history, the
    newest sign-ins and one page of sent mail (``sent_page``; out-of-range pages show the last one)."""
    accepted = AcceptedDomain.objects.domains_of(mailbox.tenant)
    detail = MailboxDetail(mailbox=mailbox, accepted=accepted)
    detail.rules = rule_rows(
        InboxRule.objects.for_mailbox(mailbox).present().order_by("name", "pk"), accepted
    )
    forwarding = mailbox.forwarding if hasattr(mailbox, "forwarding") else None
    if forwarding is not None and forwarding.forward_to:
        detail.forwarding = Target(forwarding.forward_to, is_external(forwarding.forward_to, accepted))
        detail.forwarding_keep_copy = forwarding.keep_copy
        detail.forwarding_changed_at = forwarding.changed_at
    detail.delegations = [
        (delegation, is_external(delegation.delegate, accepted))
        for delegation in Delegation.objects.for_mailbox(mailbox).present().order_by("delegate", "access")
    ]
    detail.rule_history = history_rows(mailbox, DirectoryChange.Kind.INBOX_RULE, accepted)
    detail.forwarding_history = history_rows(mailbox, DirectoryChange.Kind.FORWARDING, accepted)
    detail.delegation_history = history_rows(mailbox, DirectoryChange.Kind.DELEGATION, accepted)
    detail.sign_ins = list(
        SignIn.objects.filter(tenant_id=mailbox.tenant_id)
        .for_user(mailbox)
        .order_by("-time", "-id")[:SIGN_INS_SHOWN]
    )
    sent = (
        MessageEvent.objects.filter(tenant_id=mailbox.tenant_id)
        .sent_by(mailbox)
        .only("time", "subject", "recipient_count", "internal_count", "external_count", "verdict", "event_id")
        .order_by("-time", "-id")
    )
    detail.sent = Paginator(sent, SENT_PER_PAGE).get_page(sent_page)
    return detail
