"""Forms of the Microsoft 365 pages: connect a tenant, change its credential.

The credential is write-only: the client secret is a password input that never renders a value, and the
certificate's PEM box never renders one either, not even when the form comes back with an error. The forms
only carry input; :mod:`m365.services` checks the ids and the credential and raises ``M365Error``.
"""

from __future__ import annotations

from typing import Any

from django import forms

from core.models import Tenant
from m365.models import M365Connection

SECRET = M365Connection.Credential.SECRET
CERTIFICATE = M365Connection.Credential.CERTIFICATE


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders what was typed into it (a PEM with a private key)."""

    def get_context(self, name: str, value: Any, attrs: dict | None) -> dict:
        return super().get_context(name, None, attrs)


class CredentialForm(forms.Form):
    """A client secret or a certificate with its private key; only the chosen kind's box is read."""

    credential_type = forms.ChoiceField(
        label="Credential",
        choices=M365Connection.Credential.choices,
        initial=SECRET,
        widget=forms.RadioSelect,
    )
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        max_length=1000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The secret's Value (not its Secret ID), from the app's Certificates & secrets.",
    )
    certificate = forms.CharField(
        label="Certificate and private key (PEM)",
        required=False,
        max_length=20000,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
        help_text="The certificate uploaded to the app and its unencrypted private key, in one PEM.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind = data.get("credential_type")
        field = "client_secret" if kind == SECRET else "certificate"
        if kind and not (data.get(field) or "").strip():
            self.add_error(
                field, "Paste the client secret." if kind == SECRET else "Paste the certificate's PEM."
            )
        data["secret"] = data.get(field) or ""
        return data

    def credential(self) -> dict[str, str]:
        """The credential's keyword arguments of :func:`m365.services.change_credential` (and of
        :func:`m365.services.connect_tenant`)."""
        return {
            "credential_type": self.cleaned_data["credential_type"],
            "secret": self.cleaned_data["secret"],
        }


class ConnectTenantForm(CredentialForm):
    """Register a Microsoft 365 tenant for a new organisation, or for one of the console's own."""

    tenant = forms.ModelChoiceField(
        label="Organisation",
        queryset=Tenant.objects.filter(m365_connection__isnull=True),
        required=False,
        empty_label="A new organisation (named below)",
        help_text="An existing organisation keeps its data and reads Microsoft 365 from now on.",
    )
    name = forms.CharField(label="Name of the new organisation", max_length=200, required=False)
    directory_id = forms.CharField(
        label="Directory (tenant) ID",
        max_length=100,
        help_text="A GUID, from Entra ID › Overview, or the tenant's domain.",
    )
    client_id = forms.CharField(
        label="Application (client) ID",
        max_length=100,
        help_text="The app registration's GUID, from its Overview.",
    )

    field_order = [
        "tenant",
        "name",
        "directory_id",
        "client_id",
        "credential_type",
        "client_secret",
        "certificate",
    ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("tenant") and not (data.get("name") or "").strip():
            self.add_error("name", "Name the new organisation, or choose an existing one.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`m365.services.connect_tenant`, but for the actor."""
        data = self.cleaned_data
        return {key: data[key] for key in ("name", "tenant", "directory_id", "client_id")} | self.credential()
