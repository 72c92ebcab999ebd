"""Domain errors of investigations, with messages safe to show a user."""

from core.exceptions import DomainError


class InvestigationError(DomainError):
    """An investigation cannot be started, stopped or changed as asked (bad input, wrong state)."""


class InvestigationPermissionError(InvestigationError):
    """The actor's role does not allow this (readers may only look)."""
