"""Errors of the Microsoft 365 connector; their messages are safe to show (they never carry a secret)."""

from typing import Any

from core.exceptions import DomainError


class M365Error(DomainError):
    """A connection that cannot work as configured (bad credential, key, permission)."""

    calls: list[dict[str, Any]]  # the platform calls made before the failure, when a connector attached them
