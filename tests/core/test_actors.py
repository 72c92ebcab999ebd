"""The actor a view hands to a service is a signed-in person; anyone else is refused, not written down."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from core.actors import acting_user
from core.authentication import TokenPrincipal
from core.models import ApiToken, Tenant
from core.services import create_api_token

pytestmark = pytest.mark.django_db


def _request_by(user):
    request = RequestFactory().post("/")
    request.user = user
    return request


def test_it_returns_the_signed_in_person(operator):
    assert acting_user(_request_by(operator)) == operator


def test_it_refuses_an_anonymous_visitor():
    with pytest.raises(PermissionDenied):
        acting_user(_request_by(AnonymousUser()))


def test_it_refuses_an_api_token_which_has_no_user_to_record(administrator):
    token, _ = create_api_token(
        Tenant.objects.default(), actor=administrator, name="siem", scope=ApiToken.Scope.READ
    )
    with pytest.raises(PermissionDenied):
        acting_user(_request_by(TokenPrincipal(token)))
