"""Forms of the incidents queue and the incident page. They only parse input; the rules live in
:mod:`incidents.services`, whose errors the views show."""

from __future__ import annotations

from typing import Any

from django import forms

from incidents.models import Incident
from incidents.services import BULK_LIMIT

from .forms_alerts import AssignForm, TriageForm, status_choices

CLASSIFICATIONS = [("", "Choose…"), *Incident.Classification.choices]


class IncidentStatusForm(TriageForm):
    status = forms.ChoiceField(choices=status_choices(Incident.Status.ACTIVE, Incident.Status.IN_PROGRESS))


IncidentAssignForm = AssignForm


class IncidentResolveForm(TriageForm):
    classification = forms.ChoiceField(choices=CLASSIFICATIONS)
    comment = forms.CharField(
        label="Determination (optional)",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class IncidentBulkForm(forms.Form):
    """The queue's bulk bar: assign the selected incidents to me, unassign them, or resolve them."""

    ids = forms.TypedMultipleChoiceField(
        coerce=int, choices=(), error_messages={"required": "Select incidents."}
    )
    operation = forms.ChoiceField(
        choices=[("assign", "Assign to me"), ("unassign", "Unassign"), ("resolve", "Resolve")]
    )
    classification = forms.ChoiceField(choices=CLASSIFICATIONS, required=False)
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any positive id parses; the service says which no longer exist.
        self.fields["ids"].valid_value = (  # type: ignore[attr-defined]  # this form's field only
            lambda value: str(value).isdigit() and int(value) > 0
        )

    def clean_ids(self) -> list[int]:
        ids = sorted(set(self.cleaned_data["ids"]))
        if len(ids) > BULK_LIMIT:
            raise forms.ValidationError(f"Work on at most {BULK_LIMIT} incidents at a time.")
        return ids

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("operation") == "resolve" and not data.get("classification"):
            self.add_error("classification", "Choose a classification to resolve incidents.")
        return data
