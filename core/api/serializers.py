"""Serializers of the change feed (``/api/v1/feed/``)."""

from rest_framework import serializers

from ..models import ChangeFeedEntry, Tenant


class ChangeFeedEntrySerializer(serializers.ModelSerializer):
    """One entry: the documented change document plus its feed position (the cursor)."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    target = serializers.SerializerMethodField()
    data = serializers.JSONField(source="payload")  # type: ignore[assignment]  # a field: the metaclass pops it
    schema = serializers.SerializerMethodField()
    cursor = serializers.CharField(source="position")
    at = serializers.SerializerMethodField()

    class Meta:
        model = ChangeFeedEntry
        fields = ["schema", "id", "cursor", "kind", "at", "tenant", "target", "data"]

    def get_target(self, entry: ChangeFeedEntry) -> dict[str, str]:
        return {"type": entry.target_type, "id": entry.target_id}

    def get_at(self, entry: ChangeFeedEntry) -> str:
        return entry.at.isoformat()  # as webhook bodies carry it

    def get_schema(self, entry: ChangeFeedEntry) -> int:
        return ChangeFeedEntry.SCHEMA_VERSION


class FeedPageSerializer(serializers.Serializer):
    entries = ChangeFeedEntrySerializer(many=True)
    next_cursor = serializers.CharField()


class FeedQuerySerializer(serializers.Serializer):
    cursor = serializers.IntegerField(min_value=0, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=100)
