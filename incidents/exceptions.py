from core.exceptions import DomainError


class IncidentError(DomainError):
    """A triage request the incident's state does not allow (the message says why)."""
