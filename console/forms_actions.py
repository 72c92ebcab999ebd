"""Forms of the action center and the investigation page: decisions (one or many actions), undo, manual steps,
stopping an investigation. They only parse input; the rules live in :mod:`investigations.actions` and
:mod:`investigations.services`, whose errors the views show."""

from __future__ import annotations

from typing import Any

from django import forms

from investigations.actions import BULK_LIMIT

APPROVE = "approve"
REJECT = "reject"


def comment_field() -> forms.CharField:
    """The comment box of a confirmation (optional here; the service says when it is required)."""
    return forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))


class IdListField(forms.Field):
    """Several ``ids`` values (checkboxes or hidden inputs) as a list of positive integers."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        try:
            ids = sorted({int(item) for item in value})
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError("Choose actions from the list.") from exc
        if any(pk < 1 for pk in ids):
            raise forms.ValidationError("Choose actions from the list.")
        return ids

    def validate(self, value: list[int]) -> None:
        super().validate(value)
        if len(value) > BULK_LIMIT:
            raise forms.ValidationError(f"Decide on at most {BULK_LIMIT} actions at a time.")


class DecisionForm(forms.Form):
    """The rules (a reject needs a comment, one action type) are checked by the service at confirmation."""

    ids = IdListField(error_messages={"required": "Select at least one action."})
    decision = forms.ChoiceField(choices=[(APPROVE, "Approve"), (REJECT, "Reject")])
    comment = comment_field()

    @property
    def approve(self) -> bool:
        return self.cleaned_data["decision"] == APPROVE


class UndoForm(forms.Form):
    """The comment is collected on the confirmation; the service requires it."""

    comment = comment_field()


class ManualStepForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("done", "Done by hand"), ("failed", "Could not be done")])
    comment = comment_field()

    @property
    def done(self) -> bool:
        return self.cleaned_data["outcome"] == "done"


class StopInvestigationForm(forms.Form):
    """The comment is collected on the confirmation; the service requires it."""

    comment = comment_field()
