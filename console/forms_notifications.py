"""Forms of the Notifications page (webhook endpoints)."""

from django import forms

from core.models import Tenant
from notifications.models import EVENT_KINDS


class WebhookEndpointForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who receives it, e.g. “SIEM” or “#soc-alerts”.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), empty_label=None)
    url = forms.URLField(max_length=2000, assume_scheme="https", label="URL")
    event_kinds = forms.MultipleChoiceField(
        choices=EVENT_KINDS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        help_text="None ticked: every event.",
    )
