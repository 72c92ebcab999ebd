"""Forms of the Mail servers page: connect an organisation's Postfix + Dovecot + Rspamd, change its settings.
They only carry input; :mod:`mailstack.services` checks it and raises ``MailstackError``."""

from __future__ import annotations

from django import forms

from core.models import Tenant


class ConnectMailServersForm(forms.Form):
    tenant = forms.ModelChoiceField(
        label="Organisation",
        queryset=Tenant.objects.filter(mailstack_connection__isnull=True).order_by("name"),
        empty_label=None,
    )
    doveadm_url = forms.URLField(
        label="doveadm HTTP API URL",
        max_length=500,
        initial="http://127.0.0.1:8080/doveadm/v1",
        help_text="Where Dovecot's doveadm HTTP API listens (service doveadm { inet_listener http }).",
    )


class MailServersSettingsForm(forms.Form):
    doveadm_url = forms.URLField(label="doveadm HTTP API URL", max_length=500)
    enabled = forms.BooleanField(label="Enabled (endpoints, Sieve reads and actions)", required=False)
