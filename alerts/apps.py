from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models.signals import post_save

from core import appconfig

if TYPE_CHECKING:
    from core.models import Tenant


def seed_policies_of_new_tenant(
    sender: type[Tenant], instance: Tenant, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """A new tenant gets the default policies in the transaction that creates it, not on its first page view.

    A signal because tenants live in ``core``, below ``alerts``: core cannot call up into this app.
    """
    if created and not raw:
        from .services import ensure_default_policies

        ensure_default_policies(instance)


class AlertsConfig(appconfig.DomainAppConfig):
    name = "alerts"
    verbose_name = "Alerts and alert policies"

    def connect(self) -> None:
        from core.models import Tenant
        from core.retention import register_guard

        from .retention import keep_alert_evidence

        register_guard(keep_alert_evidence)  # the events behind an alert outlive the retention window
        post_save.connect(seed_policies_of_new_tenant, sender=Tenant, dispatch_uid="alerts.seed_policies")
