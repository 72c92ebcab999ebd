"""The endpoints the servers call: ``/hooks/mailstack/<tenant slug>/rspamd`` and ``…/dovecot-policy``."""

from django.urls import path

from . import endpoints

app_name = "mailstack"

urlpatterns = [
    path("<slug:tenant_slug>/rspamd", endpoints.rspamd_export, name="rspamd_export"),
    path("<slug:tenant_slug>/dovecot-policy", endpoints.dovecot_policy, name="dovecot_policy"),
]
