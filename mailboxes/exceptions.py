"""Domain errors of the directory, with messages safe to show a user."""

from core.exceptions import DomainError


class DirectoryError(DomainError):
    """A directory write that cannot be done as asked (bad domain, unknown operation …)."""
