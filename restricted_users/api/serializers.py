"""API representations of restrictions and the bodies of the restrict-by-hand and release requests."""

from rest_framework import serializers

from core.models import Tenant
from mailboxes.models import Mailbox

from ..models import CHECKLIST_ITEMS, Restriction


class RestrictionSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    address = serializers.CharField(source="mailbox.address", read_only=True)
    display_name = serializers.CharField(source="mailbox.display_name", read_only=True)
    state = serializers.ChoiceField(choices=Restriction.State.choices, read_only=True)
    released_by = serializers.SerializerMethodField()

    class Meta:
        model = Restriction
        fields = [
            "id",
            "tenant",
            "mailbox",
            "address",
            "display_name",
            "state",
            "policy_name",
            "source",
            "reason",
            "placed_by_label",
            "placed_at",
            "expires_at",
            "closed_at",
            "released_at",
            "released_by",
            "release_reason",
            "release_override_reason",
            "release_flagged",
            "checklist",
        ]
        read_only_fields = fields

    def get_released_by(self, obj: Restriction) -> str | None:
        return obj.released_by.get_username() if obj.released_by else None


class RestrictByHandSerializer(serializers.Serializer):
    """Name the mailbox by id, or by address (in ``tenant``, by default the default tenant)."""

    mailbox = serializers.PrimaryKeyRelatedField(
        queryset=Mailbox.objects.select_related("tenant"), required=False
    )
    address = serializers.EmailField(required=False)
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.all(), required=False)
    reason = serializers.CharField(allow_blank=True, default="")
    until_released = serializers.BooleanField(default=True)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("mailbox") is None:
            if not attrs.get("address"):
                raise serializers.ValidationError("Give the mailbox (id) or its address.")
            tenant = attrs.get("tenant") or Tenant.objects.default()
            mailbox = Mailbox.objects.filter(tenant=tenant, address=attrs["address"].strip().lower()).first()
            if mailbox is None:
                raise serializers.ValidationError({"address": f"No mailbox with this address in {tenant}."})
            attrs["mailbox"] = mailbox
        return attrs


class ReleaseSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, default="")
    attestations = serializers.DictField(
        child=serializers.BooleanField(),
        default=dict,
        help_text=f"Checklist items attested by hand: {', '.join(CHECKLIST_ITEMS)}.",
    )
    override_reason = serializers.CharField(allow_blank=True, default="")
    resolve_alerts = serializers.BooleanField(
        default=True, help_text="Resolve the user's open “User restricted from sending email” alerts."
    )
    keep_alerts_reason = serializers.CharField(
        allow_blank=True, default="", help_text="Required when resolve_alerts is false."
    )
