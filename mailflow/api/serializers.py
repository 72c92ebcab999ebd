from rest_framework import serializers

from core.models import Tenant

from ..ingest import MESSAGE_DETAILS
from ..models import MessageEvent


class MessageEventSerializer(serializers.ModelSerializer):
    """A stored message event (read-only); ``sender`` is the sender's address."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    sender = serializers.CharField(source="sender.address", read_only=True)
    # Blank when the source gave none: declared so (a read-only model field loses allow_blank).
    verdict = serializers.ChoiceField(choices=MessageEvent.Verdict.choices, allow_blank=True, read_only=True)

    class Meta:
        model = MessageEvent
        fields = ["id", "tenant", "event_id", "time", "sender", "sender_id", *MESSAGE_DETAILS]
        read_only_fields = fields


class IngestErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    error = serializers.CharField()
    line = serializers.IntegerField(required=False, help_text="NDJSON only: the event's line")


class IngestWarningSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    warning = serializers.CharField()
    line = serializers.IntegerField(required=False, help_text="NDJSON only: the event's line")


class IngestAcceptedSerializer(serializers.Serializer):
    """The answer to a stored batch."""

    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    conflicting_ids = serializers.ListField(child=serializers.CharField())
    warnings = IngestWarningSerializer(many=True)


class IngestRefusedSerializer(serializers.Serializer):
    """The answer to a batch with an invalid event: nothing was stored."""

    errors = IngestErrorSerializer(many=True)  # type: ignore[assignment]  # a field: the metaclass pops it
    warnings = IngestWarningSerializer(many=True)
    error_count = serializers.IntegerField()


class IngestUndecodableSerializer(serializers.Serializer):
    """The answer to a body that does not decode (not UTF-8, not JSON, nested too deep, a huge integer):
    nothing was stored; ``index`` names the event of a JSON array, ``line`` the line, when known."""

    detail = serializers.CharField()
    index = serializers.IntegerField(required=False)
    line = serializers.IntegerField(required=False)


class IngestLimitSerializer(serializers.Serializer):
    """The answer to a request above an ingest limit (413)."""

    detail = serializers.CharField()
    limit = serializers.CharField()
    max = serializers.IntegerField()
