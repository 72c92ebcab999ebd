"""Errors of the self-hosted mail connector; their messages are safe to show (they never carry a secret)."""

from core.exceptions import DomainError


class MailstackError(DomainError):
    """A connection that cannot work as configured (bad URL, missing key, unknown tenant)."""
