from django.urls import path

from .views import (
    actions,
    alerts,
    dashboard,
    incidents,
    investigations,
    m365,
    mailboxes,
    mailstack,
    notifications,
    policies,
    restricted,
)
from .views import pages as views

app_name = "console"

urlpatterns = [
    path("", dashboard.DashboardView.as_view(), name="dashboard"),
    path("incidents/", incidents.IncidentListView.as_view(), name="incidents"),
    path("incidents/<int:pk>/", incidents.incident_detail, name="incident_detail"),
    *incidents.triage.urls("incidents/"),  # incident_bulk, incident_status, _assign, _resolve
    path("alerts/", alerts.AlertListView.as_view(), name="alert_list"),
    path("alerts/<int:pk>/", alerts.alert_detail, name="alert_detail"),
    *alerts.triage.urls("alerts/"),  # alert_bulk, alert_status, _assign, _comment, _resolve
    path("restricted-users/", restricted.RestrictedUserListView.as_view(), name="restricted_users"),
    path("restricted-users/<int:pk>/", restricted.restricted_user_detail, name="restricted_user_detail"),
    path("restricted-users/<int:pk>/release/", restricted.restriction_release, name="restriction_release"),
    path("restricted-users/restrict/", restricted.restrict_by_hand, name="restrict_by_hand"),
    path("investigations/", investigations.InvestigationListView.as_view(), name="investigations"),
    path("investigations/start/", investigations.investigation_start, name="investigation_start"),
    path("investigations/<int:pk>/", investigations.investigation_detail, name="investigation_detail"),
    path("investigations/<int:pk>/status/", investigations.investigation_status, name="investigation_status"),
    path(
        "investigations/<int:pk>/clusters/<int:cluster_pk>/",
        investigations.investigation_cluster,
        name="investigation_cluster",
    ),
    path("investigations/<int:pk>/stop/", investigations.investigation_stop, name="investigation_stop"),
    path("investigations/<int:pk>/<slug:tab>/", investigations.investigation_tab, name="investigation_tab"),
    path("action-center/", actions.ActionCenterView.as_view(), name="action_center"),
    path("action-center/decide/", actions.action_decide, name="action_decide"),
    path("action-center/<int:pk>/undo/", actions.action_undo, name="action_undo"),
    path("action-center/<int:pk>/manual/", actions.action_manual, name="action_manual"),
    path("mailboxes/", mailboxes.MailboxListView.as_view(), name="mailboxes"),
    path("mailboxes/<int:pk>/", mailboxes.mailbox_detail, name="mailbox_detail"),
    path("mailboxes/domains/", mailboxes.accepted_domains, name="accepted_domains"),
    path(
        "mailboxes/domains/<int:pk>/remove/", mailboxes.accepted_domain_remove, name="accepted_domain_remove"
    ),
    path("policies/", policies.policy_list, name="policies"),
    path("policies/<int:pk>/", policies.policy_detail, name="policy_detail"),
    path("policies/<int:pk>/overrides/", policies.policy_override_add, name="policy_override_add"),
    path(
        "policies/<int:pk>/overrides/<int:override_pk>/remove/",
        policies.policy_override_remove,
        name="policy_override_remove",
    ),
    path("audit/", views.AuditLogView.as_view(), name="audit_log"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("settings/notifications/", notifications.NotificationsView.as_view(), name="notifications"),
    path(
        "settings/notifications/<int:pk>/disable/",
        notifications.endpoint_disable,
        name="notification_endpoint_disable",
    ),
    path(
        "settings/notifications/<int:pk>/test/",
        notifications.endpoint_test,
        name="notification_endpoint_test",
    ),
    path("settings/mail-servers/", mailstack.connection_list, name="mailstack_connections"),
    path("settings/mail-servers/connect/", mailstack.connection_connect, name="mailstack_connect"),
    path("settings/mail-servers/<int:pk>/", mailstack.connection_detail, name="mailstack_connection"),
    path("settings/mail-servers/<int:pk>/test/", mailstack.connection_test, name="mailstack_test"),
    path("settings/mail-servers/<int:pk>/secrets/", mailstack.connection_secrets, name="mailstack_secrets"),
    path(
        "settings/mail-servers/<int:pk>/settings/", mailstack.connection_settings, name="mailstack_settings"
    ),
    path(
        "settings/mail-servers/<int:pk>/sieve/", mailstack.connection_read_sieve, name="mailstack_read_sieve"
    ),
    path("settings/m365/", m365.connection_list, name="m365_connections"),
    path("settings/m365/connect/", m365.connection_connect, name="m365_connect"),
    path("settings/m365/<int:pk>/", m365.ConnectionDetailView.as_view(), name="m365_connection"),
    path("settings/m365/<int:pk>/test/", m365.connection_test, name="m365_connection_test"),
    path("settings/m365/<int:pk>/pull/", m365.connection_pull, name="m365_connection_pull"),
    path("settings/m365/<int:pk>/enabled/", m365.connection_enabled, name="m365_connection_enabled"),
    path("settings/m365/<int:pk>/credential/", m365.connection_credential, name="m365_connection_credential"),
    path("settings/m365/<int:pk>/disconnect/", m365.connection_disconnect, name="m365_connection_disconnect"),
]
