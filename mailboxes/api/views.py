"""REST API of the directory: read-only mailbox list and detail (readers and read tokens)."""

from django.db.models import QuerySet
from rest_framework import viewsets

from core.permissions import RolePermission, TenantScopedMixin

from ..filtersets import MailboxFilterSet
from ..models import Mailbox
from .serializers import MailboxSerializer


class MailboxViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Mailboxes; a token sees its own tenant's only, a person every tenant (filter: ``?tenant=<slug>``)."""

    serializer_class = MailboxSerializer
    permission_classes = [RolePermission]
    read_permission = "mailboxes.view_mailbox"
    filterset_class = MailboxFilterSet

    def base_queryset(self) -> QuerySet[Mailbox]:
        mailboxes = Mailbox.objects.select_related("tenant").order_by("address", "id")
        return mailboxes
