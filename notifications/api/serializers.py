"""Serializers of the webhook API. The signing secret is write-never, read-once: only creation returns it."""

from django.contrib.auth.models import User
from rest_framework import serializers

from core.models import Tenant

from ..models import EVENT_KINDS, WebhookDelivery, WebhookEndpoint


class WebhookEndpointSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    created_by = serializers.StringRelatedField[User]()

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "name",
            "tenant",
            "url",
            "secret_prefix",
            "event_kinds",
            "enabled",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    url = serializers.URLField(max_length=2000)
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.all(), required=False)
    event_kinds = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_KINDS), required=False)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The answer to a creation: the endpoint and, this once, its signing secret."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "delivery_id",
            "endpoint",
            "kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_response_code",
            "last_error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
