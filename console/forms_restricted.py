"""Forms of the Restricted users pages; each maps to one service of :mod:`restricted_users.services`."""

from __future__ import annotations

from typing import Any

from django import forms

from mailboxes.models import Mailbox
from restricted_users.models import CHECKLIST_ITEMS

ATTEST_PREFIX = "attest_"


def reason_box(label: str, help_text: str = "", *, rows: int = 2, required: bool = False) -> forms.CharField:
    """A reason typed in a text box, kept in the audit log (2,000 characters at most)."""
    return forms.CharField(
        label=label,
        widget=forms.Textarea(attrs={"rows": rows}),
        max_length=2000,
        required=required,
        help_text=help_text,
    )


class ReleaseForm(forms.Form):
    """The release: a reason, a checkbox per checklist item not already ticked automatically, and the override
    reason only when the account is past its release cap. The service decides; the form only carries input."""

    reason = reason_box(
        "Reason for release", "Why the account is clean now. Kept in the audit log.", rows=3, required=True
    )
    override_reason = reason_box(
        "Override reason",
        "The account is past its release cap: say why it is released again. It will be flagged.",
    )

    keep_alerts_open = forms.BooleanField(
        label="Keep the user's “User restricted from sending email” alerts open",
        required=False,
        help_text="By default the release resolves them.",
    )
    keep_alerts_reason = reason_box(
        "Why they stay open", "Needed when the alerts stay open; written on each alert."
    )

    def __init__(self, *args: Any, auto_ticks: dict[str, str], past_cap: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auto_ticks = auto_ticks
        for item, label in CHECKLIST_ITEMS.items():
            if item not in auto_ticks:
                self.fields[ATTEST_PREFIX + item] = forms.BooleanField(
                    label=f"I confirm: {label}", required=False
                )
        if not past_cap:
            del self.fields["override_reason"]

    def attestations(self) -> dict[str, bool]:
        return {
            name.removeprefix(ATTEST_PREFIX): bool(value)
            for name, value in self.cleaned_data.items()
            if name.startswith(ATTEST_PREFIX)
        }

    def resubmission(self) -> list[tuple[str, str]]:
        """The cleaned input as (name, value) pairs, for the hidden fields of the confirmation step."""
        pairs = []
        for name, value in self.cleaned_data.items():
            if isinstance(value, bool):
                if value:
                    pairs.append((self.add_prefix(name), "on"))
            elif value:
                pairs.append((self.add_prefix(name), value))
        return pairs

    def attest_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(ATTEST_PREFIX)]


class RestrictByHandForm(forms.Form):
    """Posted from a mailbox's page: ``mailbox`` (id), ``reason``, ``until`` (``released``/``next_day``)."""

    UNTIL_CHOICES = [("released", "Until released"), ("next_day", "Until the next 00:00 UTC")]

    mailbox = forms.ModelChoiceField(queryset=Mailbox.objects.select_related("tenant"))
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    until = forms.ChoiceField(choices=UNTIL_CHOICES, required=False)

    def until_released(self) -> bool:
        return self.cleaned_data.get("until") != "next_day"
