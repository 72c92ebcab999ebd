from core.exceptions import DomainError


class PolicyValidationError(DomainError):
    """A policy change with a bad value; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


class AlertStateError(DomainError):
    pass
