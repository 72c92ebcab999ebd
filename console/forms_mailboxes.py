"""Forms of the Mailboxes pages; each maps to one service of :mod:`mailboxes.services`."""

from __future__ import annotations

from typing import Any

from django import forms

from core.models import Tenant


class AcceptedDomainForm(forms.Form):
    """A domain to accept, for a tenant (the tenant field only when there are several). The service validates
    and normalises the name; the form only carries input."""

    domain = forms.CharField(label="Domain", max_length=253, help_text="For example example.com")
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.all(), to_field_name="slug", label="Tenant", empty_label=None
    )

    def __init__(self, *args: Any, single_tenant: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if single_tenant:
            del self.fields["tenant"]
