from rest_framework import serializers

from core.models import Tenant

from ..models import Mailbox


class MailboxSerializer(serializers.ModelSerializer):
    """A mailbox with its directory attributes and account state (read-only)."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)

    class Meta:
        model = Mailbox
        fields = [
            "id",
            "tenant",
            "address",
            "display_name",
            "department",
            "vip",
            "first_seen",
            "updated_at",
            "account_enabled",
            "password_reset_required",
            "sessions_revoked_at",
        ]
        read_only_fields = fields
