from django.db.models import Model
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiToken


class TokenPrincipal:
    """The caller behind an API token: not a person, bound to one tenant, limited to the token's scope."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, token: ApiToken):
        self.token = token
        self.tenant = token.tenant

    def get_username(self) -> str:
        return f"token:{self.token.name}"

    def has_perm(self, perm: str, obj: Model | None = None) -> bool:
        # A read token may view; an ingest token may do nothing but write events (checked by the ingest view).
        return self.token.scope == ApiToken.Scope.READ and perm.split(".")[-1].startswith("view_")

    def __str__(self) -> str:
        return self.get_username()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer soc_…``. Tokens are hashed at rest; a revoked one is refused."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        token = ApiToken.objects.authenticate(parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return TokenPrincipal(token), token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
