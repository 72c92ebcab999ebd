"""The one role map (DESIGN section 8): Django groups and the permissions each may use.

Entries are ``app_label.codename`` patterns (``*`` wildcards) over this project's apps, so an app that adds a
model or a custom permission only has to name it here; the groups are re-synced after every migrate.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.contrib.auth.models import Group, Permission

READER = "Security reader"
OPERATOR = "Security operator"
ADMINISTRATOR = "Security administrator"
ROLE_NAMES = (READER, OPERATOR, ADMINISTRATOR)

_READER = (
    "core.view_console",
    "*.view_*",
)
_OPERATOR = _READER + (
    "alerts.triage_alert",
    "incidents.triage_incident",
    "investigations.start_investigation",
    "investigations.stop_investigation",
    "investigations.decide_action",
    "investigations.undo_action",
)
_ADMINISTRATOR = _OPERATOR + (
    "restricted_users.release_restriction",
    "restricted_users.add_restriction",
    "alerts.change_alertpolicy",
    "core.change_tenant",
    "core.add_tenant",
    "core.add_apitoken",
    "core.change_apitoken",
    "mailboxes.change_accepteddomain",
    "mailboxes.add_accepteddomain",
    "mailboxes.delete_accepteddomain",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "mailflow.add_messageevent",
    "notifications.add_webhookendpoint",
    "notifications.change_webhookendpoint",
    "m365.add_m365connection",
    "m365.change_m365connection",
    "m365.delete_m365connection",
    "mailstack.add_mailstackconnection",
    "mailstack.change_mailstackconnection",
)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    READER: _READER,
    OPERATOR: _OPERATOR,
    ADMINISTRATOR: _ADMINISTRATOR,
}

# Never granted through a wildcard: the audit trail is append-only.
_NEVER = ("core.change_auditevent", "core.delete_auditevent", "core.add_auditevent")


def permissions_for(role: str) -> list[Permission]:
    patterns = ROLE_PERMISSIONS[role]
    chosen = []
    for perm in Permission.objects.select_related("content_type").filter(
        content_type__app_label__in=(*settings.PROJECT_APPS, "auth")
    ):
        name = f"{perm.content_type.app_label}.{perm.codename}"
        if name in _NEVER:
            continue
        if perm.content_type.app_label == "auth" and name not in patterns:
            continue
        if any(fnmatchcase(name, pattern) for pattern in patterns):
            chosen.append(perm)
    return chosen


def sync_roles() -> None:
    """Create the three groups and set their permissions exactly to the role map."""
    for role in ROLE_NAMES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions_for(role))


def sync_roles_after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # Runs once per app with models in INSTALLED_APPS order, each app creating its own permissions first:
    # sync after the last project app that has models, when every permission exists.
    from django.apps import apps

    installed = [
        config.label
        for config in apps.get_app_configs()
        if config.label in settings.PROJECT_APPS and config.models_module is not None
    ]
    if installed and sender.label == installed[-1]:
        sync_roles()
