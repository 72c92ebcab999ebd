from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core: tenants, audit, roles, tokens"

    def ready(self) -> None:
        from . import audit_kinds  # noqa: F401 - declare the audit actions and their feed kinds
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="core.sync_roles")
        from axes.signals import user_locked_out

        from .lockouts import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="core.audit_lockout")
        from . import schema, tasks  # noqa: F401 - register tasks in every process; the OpenAPI auth scheme
