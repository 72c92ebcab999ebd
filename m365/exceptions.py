"""Errors of the Microsoft 365 connector; their messages are safe to show (they never carry a secret)."""

from core.exceptions import DomainError


class M365Error(DomainError):
    """A connection that cannot work as configured (bad credential, key, permission)."""
