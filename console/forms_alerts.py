"""Triage forms of the alert detail page; each maps to one service of :mod:`alerts.services`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.db.models import Choices

from alerts.models import Alert

SUPPRESSION_CHOICES = [
    ("", "Don't suppress"),
    ("60", "1 hour"),
    ("1440", "1 day"),
    ("10080", "7 days"),
    ("43200", "30 days"),
    ("129600", "90 days"),
]


def status_choices(*statuses: Choices) -> list[tuple[str, str]]:
    """The choices of a triage status form: the statuses a person may set by hand (resolving has its own)."""
    return [(status.value, status.label) for status in statuses]


class TriageForm(forms.Form):
    """A triage form of an alert's or an incident's page: its fields are the keyword arguments of the service
    it feeds (``service(obj, actor=…, **form.service_kwargs(actor))``), unless it says otherwise."""

    def service_kwargs(self, actor: User) -> dict[str, Any]:
        return dict(self.cleaned_data)


class AlertStatusForm(TriageForm):
    status = forms.ChoiceField(choices=status_choices(Alert.Status.NEW, Alert.Status.IN_PROGRESS))


class AssignForm(TriageForm):
    """``me`` assigns the alert or incident to the person submitting; ``nobody`` unassigns it."""

    assignee = forms.ChoiceField(choices=[("me", "Assign to me"), ("nobody", "Unassign")])

    def service_kwargs(self, actor: User) -> dict[str, Any]:
        return {"assignee": actor if self.cleaned_data["assignee"] == "me" else None}


AlertAssignForm = AssignForm


class AlertCommentForm(TriageForm):
    body = forms.CharField(label="Comment", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class AlertResolveForm(TriageForm):
    """Resolve with a classification; optionally suppress new alerts of this policy for this user."""

    classification = forms.ChoiceField(choices=[("", "Choose…"), *Alert.Classification.choices])
    suppress_minutes = forms.TypedChoiceField(
        label="Suppress new alerts for this user and policy",
        choices=SUPPRESSION_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Only for expected activity or a false positive: a true positive is never suppressed.",
    )
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def suppress_for(self) -> timedelta | None:
        minutes = self.cleaned_data["suppress_minutes"]
        return timedelta(minutes=minutes) if minutes else None

    def service_kwargs(self, actor: User) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "classification": data["classification"],
            "comment": data["comment"],
            "suppress_for": self.suppress_for(),
        }


BULK_LIMIT = 200
BULK_OPERATIONS = [
    ("assign_me", "Assign to me"),
    ("unassign", "Unassign"),
    ("in_progress", "Set status: In progress"),
    ("new", "Set status: New"),
    ("resolve", "Resolve…"),
]


class AlertBulkForm(forms.Form):
    """Triage of the alerts ticked on the queue: one operation applied to each through the same service as
    on the alert's page (so each alert gets its own audit row). Resolving needs a classification."""

    ids = forms.TypedMultipleChoiceField(coerce=int, required=True)
    operation = forms.ChoiceField(choices=BULK_OPERATIONS)
    classification = forms.ChoiceField(
        choices=[("", "Choose…"), *Alert.Classification.choices], required=False
    )
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any positive id is acceptable here; the view reads which of them exist.
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        ids_field = self.fields["ids"]
        assert isinstance(ids_field, forms.ChoiceField)
        ids_field.choices = [(value, value) for value in raw if str(value).isdigit()]
        self.fields["ids"].error_messages["required"] = "Tick at least one alert."
        self.fields["ids"].error_messages["invalid_choice"] = "Choose alerts from the list."

    def clean_ids(self) -> list[int]:
        ids = sorted(set(self.cleaned_data["ids"]))
        if len(ids) > BULK_LIMIT:
            raise forms.ValidationError(f"Triage at most {BULK_LIMIT} alerts at a time.")
        return ids

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("operation") == "resolve" and not cleaned.get("classification"):
            self.add_error("classification", "Choose a classification to resolve the alerts.")
        return cleaned
