from django.http import HttpRequest
from django.urls import reverse

# (label, URL name, permission). One list: the navigation, the smoke run and the browser walk all read it.
NAVIGATION = (
    ("Dashboard", "console:dashboard", "alerts.view_alert"),
    ("Incidents", "console:incidents", "incidents.view_incident"),
    ("Alerts", "console:alert_list", "alerts.view_alert"),
    ("Restricted users", "console:restricted_users", "core.view_console"),
    ("Investigations", "console:investigations", "core.view_console"),
    ("Action center", "console:action_center", "core.view_console"),
    ("Mailboxes", "console:mailboxes", "core.view_console"),
    ("Policies", "console:policies", "alerts.view_alertpolicy"),
    ("Audit log", "console:audit_log", "core.view_auditevent"),
)


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    current = request.resolver_match.view_name if request.resolver_match else ""
    items = [
        {"label": label, "url": reverse(name), "active": current == name}
        for label, name, perm in NAVIGATION
        if user.has_perm(perm)
    ]
    return {"navigation": items}
