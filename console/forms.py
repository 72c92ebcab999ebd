from django import forms

from core.models import ApiToken, Tenant


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “mail gateway export”.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), empty_label=None)
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.INGEST)
