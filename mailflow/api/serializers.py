from rest_framework import serializers

from ..models import MessageEvent


class MessageEventSerializer(serializers.ModelSerializer):
    """A stored message event (read-only); ``sender`` is the sender's address."""

    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    sender = serializers.CharField(source="sender.address", read_only=True)

    class Meta:
        model = MessageEvent
        fields = [
            "id",
            "tenant",
            "event_id",
            "time",
            "sender",
            "sender_id",
            "recipients",
            "recipient_count",
            "internal_count",
            "external_count",
            "external_domains",
            "subject",
            "verdict",
            "urls",
            "size",
            "client_ip",
            "internet_message_id",
            "body_hash",
            "received_at",
        ]
        read_only_fields = fields


class IngestErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class IngestWarningSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    warning = serializers.CharField()


class IngestAcceptedSerializer(serializers.Serializer):
    """The answer to a stored batch."""

    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    conflicting_ids = serializers.ListField(child=serializers.CharField())
    warnings = IngestWarningSerializer(many=True)


class IngestRefusedSerializer(serializers.Serializer):
    """The answer to a batch with an invalid event: nothing was stored."""

    errors = IngestErrorSerializer(many=True)
    warnings = IngestWarningSerializer(many=True)
    error_count = serializers.IntegerField()
