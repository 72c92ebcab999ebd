from core.exceptions import DomainError


class EndpointError(DomainError):
    """A webhook endpoint that cannot be created or changed as asked (the message is user-safe)."""
