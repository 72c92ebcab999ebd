"""Domain errors of restricted_users, with messages safe to show a user."""

from core.exceptions import DomainError


class RestrictionError(DomainError):
    """A restriction cannot be placed or changed as asked (bad input, wrong state)."""


class RestrictionPermissionError(RestrictionError):
    """The actor's role does not allow this (only administrators restrict by hand and release)."""


class ChecklistIncomplete(RestrictionError):
    """Some release checklist item is neither ticked automatically nor attested."""


class OverrideRequired(RestrictionError):
    """The account is past its release cap: the release needs an override reason."""
