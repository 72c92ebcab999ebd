"""Domain errors of investigations, their actions and connectors, with messages safe to show a user."""

from typing import Any

from core.exceptions import DomainError


class InvestigationError(DomainError):
    """An investigation cannot be started, stopped or changed as asked (bad input, wrong state)."""


class InvestigationPermissionError(InvestigationError):
    """The actor's role does not allow this (readers may only look)."""


class ActionError(DomainError):
    """A decision or change of a remediation action that cannot be made as asked; the message says why."""


class ActionPermissionError(ActionError):
    """The person may not make this change (their role lacks the permission)."""


class TransientConnectorError(Exception):
    """A failure worth retrying: the platform timed out, throttled or was briefly unavailable."""

    calls: list[dict[str, Any]]  # the platform calls made before the failure, when a connector attached them


class ConnectorError(DomainError):
    """A failure retrying will not fix (the platform refused, the target cannot change). User-safe text."""

    calls: list[dict[str, Any]]  # the platform calls made before the failure, when a connector attached them


class ConnectorNotConfigured(ConnectorError):
    """The tenant's connector kind has no entry in ``settings.CONNECTOR_KINDS``."""
