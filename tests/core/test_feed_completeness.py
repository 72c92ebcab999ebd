"""Feed completeness (issue 14): every audit action the code writes is declared with the change-feed kind it
publishes, or as internal with a reason; and webhooks can subscribe to every declared kind."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from core.feed import declaration_of, declared
from notifications.models import EVENT_KINDS

ROOT = Path(settings.BASE_DIR)
APP_DIRS = [path for path in sorted(ROOT.iterdir()) if path.is_dir() and (path / "apps.py").exists()]
# record_audit("a.b.c" ... / record_audit(f"a.{verb}" ...; the first argument, on the call's line or the next.
CALL = re.compile(r"record_audit\(\s*(f?)\"([^\"]+)\"", re.MULTILINE)


def audit_actions_in_code() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for app in APP_DIRS:
        for path in app.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for is_f, text in CALL.findall(path.read_text()):
                action = re.sub(r"\{[^}]*\}", "*", text) if is_f else text
                found.setdefault(action, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_audit_actions_of_every_domain_app():
    actions = audit_actions_in_code()
    prefixes = {action.split(".", 1)[0] for action in actions}
    assert {"alerts", "investigations", "restricted_users", "core"} <= prefixes
    assert "investigations.action.*" in actions  # the decision verbs, written with an f-string


def test_every_audit_action_in_the_code_is_declared_with_its_feed_kind_or_as_internal():
    undeclared = []
    for action, where in audit_actions_in_code().items():
        if "*" in action:
            pattern = re.compile(re.escape(action).replace(r"\*", ".+"))
            if action.startswith("*") or any(pattern.fullmatch(d.pattern) for d in declared()):
                continue
            if declaration_of(action.replace("*", "x")) is not None:
                continue
        elif declaration_of(action) is not None:
            continue
        undeclared.append(f"{action} ({', '.join(where)})")
    assert not undeclared, "Declare these audit actions in their app's audit_kinds.py: " + "; ".join(
        undeclared
    )


def test_every_declared_feed_kind_can_be_subscribed_to_by_a_webhook():
    subscribable = {kind for kind, _ in EVENT_KINDS}
    kinds = {d.feed_kind for d in declared() if d.feed_kind}
    assert kinds <= subscribable, f"Add to notifications.models.EVENT_KINDS: {sorted(kinds - subscribable)}"


def test_state_changes_an_analyst_acts_on_are_published_not_internal():
    for action in (
        "investigations.investigation.stopped",
        "investigations.action.undone",
        "investigations.action.expired",
        "investigations.action.manual_completed",
        "restricted_users.restriction.released",
        "alerts.alert.reopened",
    ):
        declaration = declaration_of(action)
        assert declaration is not None and declaration.feed_kind, action
