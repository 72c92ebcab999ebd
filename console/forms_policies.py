"""Forms of the policy pages. They parse what a person typed; the values themselves are validated by
:func:`alerts.policy_services.update_policy` / :func:`alerts.policy_services.set_policy_override`, whose
errors (keyed by field, ``thresholds.<key>`` for a threshold) are put back on the matching form field."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django import forms
from django.http import QueryDict

from alerts.models import AlertPolicy, Severity
from alerts.policies import DEFAULTS_BY_KIND, Threshold

from . import presenters

if TYPE_CHECKING:
    _FormBase = forms.Form
else:
    _FormBase = object  # a mixin: the form it is mixed into brings fields and add_error

THRESHOLD_PREFIX = "threshold_"
_SEPARATORS = re.compile(r"[\n,;]+")


def _split(text: str) -> list[str]:
    """One value per line (commas and semicolons also separate)."""
    return [part.strip() for part in _SEPARATORS.split(text or "") if part.strip()]


def _thresholds_of(policy: AlertPolicy) -> dict[str, Threshold]:
    default = DEFAULTS_BY_KIND.get(policy.kind)
    return dict(default.thresholds) if default else {}


def _threshold_field(
    key: str, spec: Threshold, *, required: bool, current: int | None = None
) -> forms.IntegerField:
    """A threshold's field, labelled in words with its unit; an override's help reads the policy's value now
    (``current``), not the shipped default."""
    unit = presenters.unit_of(key)
    label = key.replace("_", " ").capitalize() + (f" ({unit})" if unit else "")
    if current is None:
        help_text = f"{spec.help}. Allowed {spec.minimum}–{spec.maximum:,}; default {spec.default:,}."
    else:
        help_text = (
            f"{spec.help}. Allowed {spec.minimum}–{spec.maximum:,}. Leave empty to keep this policy's value, "
            f"now {presenters.with_unit(current, key)}."
        )
    return forms.IntegerField(
        label=label,
        required=required,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"min": spec.minimum, "max": spec.maximum, "step": 1}),
    )


class ServiceErrorsMixin(_FormBase):
    """Put a service's ``{field: message}`` errors on the form's own fields (else as a form-wide error)."""

    def add_service_errors(self, errors: dict[str, str]) -> None:
        for name, message in errors.items():
            field = THRESHOLD_PREFIX + name.split(".", 1)[1] if name.startswith("thresholds.") else name
            if field in self.fields:
                self.add_error(field, message)
            else:
                self.add_error(None, f"{name.replace('_', ' ').capitalize()}: {message}")


class PolicyForm(ServiceErrorsMixin, forms.Form):
    """Every editable setting of one policy, with one number field per threshold of its kind."""

    enabled = forms.BooleanField(required=False, label="Enabled")
    severity = forms.ChoiceField(choices=Severity.choices)
    aggregation_minutes = forms.IntegerField(
        label="Aggregation window (minutes)",
        help_text="Matching events within this window fold into one alert (1–1,440).",
        widget=forms.NumberInput(attrs={"min": 1, "max": 1440}),
    )
    action = forms.ChoiceField(
        choices=AlertPolicy.Action.choices, help_text="Only the sending limit policy can restrict users."
    )
    investigate_mode = forms.ChoiceField(choices=AlertPolicy.InvestigateMode.choices, label="Investigate")
    rerestrict_after_release = forms.BooleanField(
        required=False, label="Restrict again after a release (same day)"
    )
    notify_recipients = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Email addresses, one per line."
    )
    notify_min_severity = forms.ChoiceField(
        choices=Severity.choices,
        label="Notify from severity",
        help_text="Alerts of this severity or higher are mailed to the recipients.",
    )
    notify_daily_limit = forms.IntegerField(
        label="Daily mail limit",
        help_text="Mails per UTC day under this policy (0–10,000); past it one summary mail says so.",
        widget=forms.NumberInput(attrs={"min": 0, "max": 10_000, "step": 1}),
    )
    scope = forms.ChoiceField(choices=AlertPolicy.Scope.choices)
    include_mailboxes = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Addresses, one per line."
    )
    include_departments = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Departments, one per line."
    )
    exclude_mailboxes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses, one per line. Exclusions win over inclusions.",
    )
    exclude_departments = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Departments, one per line."
    )

    LIST_FIELDS = (
        "notify_recipients",
        "include_mailboxes",
        "include_departments",
        "exclude_mailboxes",
        "exclude_departments",
    )

    def __init__(self, data: QueryDict | None = None, *, policy: AlertPolicy, **kwargs: Any) -> None:
        self.policy = policy
        self.threshold_keys = list(_thresholds_of(policy))
        initial = {
            "enabled": policy.enabled,
            "severity": policy.severity,
            "aggregation_minutes": policy.aggregation_minutes,
            "action": policy.action,
            "investigate_mode": policy.investigate_mode,
            "rerestrict_after_release": policy.rerestrict_after_release,
            "notify_min_severity": policy.notify_min_severity,
            "notify_daily_limit": policy.notify_daily_limit,
            "scope": policy.scope,
            **{name: "\n".join(getattr(policy, name)) for name in self.LIST_FIELDS},
            **{THRESHOLD_PREFIX + key: value for key, value in policy.thresholds.items()},
        }
        super().__init__(data, initial=initial, **kwargs)
        for key, spec in _thresholds_of(policy).items():
            self.fields[THRESHOLD_PREFIX + key] = _threshold_field(key, spec, required=True)

    def threshold_fields(self) -> list[forms.BoundField]:
        return [self[THRESHOLD_PREFIX + key] for key in self.threshold_keys]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if not name.startswith(THRESHOLD_PREFIX)]

    def changes(self) -> dict[str, Any]:
        """The keyword arguments of :func:`alerts.policy_services.update_policy`."""
        data = self.cleaned_data
        changes: dict[str, Any] = {
            name: data[name]
            for name in (
                "enabled",
                "severity",
                "aggregation_minutes",
                "action",
                "investigate_mode",
                "rerestrict_after_release",
                "notify_min_severity",
                "notify_daily_limit",
                "scope",
            )
        }
        changes.update({name: _split(data[name]) for name in self.LIST_FIELDS})
        if self.threshold_keys:
            changes["thresholds"] = {key: data[THRESHOLD_PREFIX + key] for key in self.threshold_keys}
        return changes


class PolicyOverrideForm(ServiceErrorsMixin, forms.Form):
    """One mailbox's own thresholds on a policy: leave a threshold blank to keep the policy's value."""

    mailbox_address = forms.CharField(
        label="Mailbox", max_length=320, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    expires_at = forms.DateTimeField(
        label="Expires (UTC)",
        required=False,
        help_text="Leave empty to keep the override until it is removed.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    note = forms.CharField(required=False, max_length=300, help_text="Why, e.g. “newsletter owner”.")

    def __init__(self, *args: Any, policy: AlertPolicy, **kwargs: Any) -> None:
        self.policy = policy
        self.threshold_keys = list(_thresholds_of(policy))
        super().__init__(*args, **kwargs)
        for key, spec in _thresholds_of(policy).items():
            current = (policy.thresholds or {}).get(key, spec.default)
            self.fields[THRESHOLD_PREFIX + key] = _threshold_field(key, spec, required=False, current=current)

    def threshold_fields(self) -> list[forms.BoundField]:
        return [self[THRESHOLD_PREFIX + key] for key in self.threshold_keys]

    def override(self) -> dict[str, Any]:
        """The keyword arguments of :func:`alerts.policy_services.set_policy_override`."""
        data = self.cleaned_data
        return {
            "mailbox_address": data["mailbox_address"],
            "thresholds": {
                key: data[THRESHOLD_PREFIX + key]
                for key in self.threshold_keys
                if data.get(THRESHOLD_PREFIX + key) is not None
            },
            "expires_at": data["expires_at"],
            "note": data["note"],
        }
