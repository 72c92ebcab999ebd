from django.db.models.signals import post_migrate

from . import appconfig


class CoreConfig(appconfig.DomainAppConfig):
    name = "core"
    verbose_name = "Core: tenants, audit, roles, tokens"
    # ``schema``: the OpenAPI auth scheme.
    registers = ("audit_kinds", "tasks", "schema")

    def connect(self) -> None:
        from axes.signals import user_locked_out

        from .lockouts import audit_lockout
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="core.sync_roles")
        user_locked_out.connect(audit_lockout, dispatch_uid="core.audit_lockout")
