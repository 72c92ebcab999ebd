"""Which change-feed kind each audited action publishes (DESIGN §12: every change an analyst or a SIEM should
hear about is written to the change feed in the transaction that made it).

Each app declares its audit actions in ``AppConfig.ready()`` with :func:`declare_audit_actions`: the feed kind
the service publishes with that audit row, or ``None`` for an internal action, with the reason. The test
``tests/core/test_feed_completeness.py`` reads every audit action written in the code and fails on an action
that is not declared; the loop's state-machine test checks at run time that each declared action's audit row
comes with its feed entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class AuditAction:
    pattern: str  # an audit action, or an fnmatch pattern such as "mailboxes.*"
    feed_kind: str | None  # the change-feed kind published with it; None: internal
    why_internal: str = ""


_DECLARED: list[AuditAction] = []


def declare_audit_actions(kinds: dict[str, str], internal: dict[str, str] | None = None) -> None:
    """Declare audit actions: ``kinds`` maps an action (or pattern) to its feed kind; ``internal`` maps an
    action (or pattern) that publishes nothing to the reason why. Idempotent."""
    for pattern, kind in kinds.items():
        _add(AuditAction(pattern, kind))
    for pattern, why in (internal or {}).items():
        if not why.strip():
            raise ValueError(f"Say why the audit action {pattern!r} is internal.")
        _add(AuditAction(pattern, None, why))


def _add(entry: AuditAction) -> None:
    if entry not in _DECLARED:
        _DECLARED.append(entry)


def declaration_of(action: str) -> AuditAction | None:
    """The declaration an audit action falls under (an exact entry before a pattern), or None."""
    exact = [entry for entry in _DECLARED if entry.pattern == action]
    if exact:
        return exact[0]
    matches = [entry for entry in _DECLARED if fnmatchcase(action, entry.pattern)]
    return max(matches, key=lambda entry: len(entry.pattern)) if matches else None


def declared() -> tuple[AuditAction, ...]:
    return tuple(_DECLARED)
