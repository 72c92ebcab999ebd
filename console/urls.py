from django.urls import path

from .views import pages as views

app_name = "console"

urlpatterns = [
    path(
        "",
        views.EmptyStatePage.as_view(
            title="Alerts dashboard",
            explanation="No alert has been raised. Alert policies and detection are not enabled in this "
            "build yet, so nothing is being evaluated: the dashboard fills in once they are.",
        ),
        name="dashboard",
    ),
    path(
        "restricted-users/",
        views.EmptyStatePage.as_view(
            title="Restricted users",
            explanation="No user is restricted from sending. Sending limits are not enforced in this "
            "build yet.",
        ),
        name="restricted_users",
    ),
    path(
        "investigations/",
        views.EmptyStatePage.as_view(
            title="Investigations",
            explanation="No automated investigation has run. The compromised-user playbook is not "
            "enabled yet.",
        ),
        name="investigations",
    ),
    path(
        "action-center/",
        views.EmptyStatePage.as_view(
            title="Action center",
            explanation="No remediation action is pending or has been decided.",
        ),
        name="action_center",
    ),
    path(
        "mailboxes/",
        views.EmptyStatePage.as_view(
            title="Mailboxes",
            explanation="No mailbox is known yet. Mailboxes appear as telemetry is ingested.",
        ),
        name="mailboxes",
    ),
    path(
        "policies/",
        views.EmptyStatePage.as_view(
            title="Alert policies",
            explanation="No alert policy is configured yet.",
        ),
        name="policies",
    ),
    path("audit/", views.AuditLogView.as_view(), name="audit_log"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
