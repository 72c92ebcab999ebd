"""Domain errors of core, with messages safe to show a user."""


class DomainError(Exception):
    """Base for every domain error in the project: views turn it into a form error or HTTP 400."""


class AuditIsAppendOnly(DomainError):
    pass


class TokenError(DomainError):
    pass
