"""Representations of incidents for ``/api/v1/incidents/`` and the inputs of their actions. The rules live in
:mod:`incidents.services`; these only shape output and parse input."""

from __future__ import annotations

from rest_framework import serializers

from alerts.api.serializers import TriagedFields
from core.models import Tenant

from ..models import Incident


class IncidentSerializer(TriagedFields, serializers.ModelSerializer):
    """An incident as the queue shows it, with the ids of everything it groups."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    # Blank until resolved: declared so (a read-only model field loses allow_blank).
    classification = serializers.ChoiceField(
        choices=Incident.Classification.choices, allow_blank=True, read_only=True
    )
    user = serializers.SerializerMethodField()
    assigned_to = serializers.SerializerMethodField()
    resolved_by = serializers.SerializerMethodField()
    alerts = serializers.SerializerMethodField()
    restrictions = serializers.SerializerMethodField()
    investigations = serializers.SerializerMethodField()
    alert_count = serializers.IntegerField(read_only=True)
    open_alert_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "tenant",
            "title",
            "severity",
            "status",
            "classification",
            "determination",
            "user",
            "assigned_to",
            "first_activity_at",
            "last_activity_at",
            "created_at",
            "resolved_at",
            "resolved_by",
            "alert_count",
            "open_alert_count",
            "alerts",
            "restrictions",
            "investigations",
        ]
        read_only_fields = fields

    def get_alerts(self, incident: Incident) -> list[int]:
        return sorted(link.alert_id for link in incident.alert_links.all())

    def get_restrictions(self, incident: Incident) -> list[int]:
        return sorted(link.restriction_id for link in incident.restriction_links.all())

    def get_investigations(self, incident: Incident) -> list[int]:
        return sorted(link.investigation_id for link in incident.investigation_links.all())


class IncidentDetailSerializer(IncidentSerializer):
    """An incident with the remediation actions of its investigations."""

    actions = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "actions"]
        read_only_fields = fields

    def get_actions(self, incident: Incident) -> list[dict]:
        from investigations.models import RemediationAction

        rows = RemediationAction.objects.filter(investigation__incident_link__incident=incident).values(
            "id", "investigation_id", "action_type", "status"
        )
        return [dict(row) for row in rows.order_by("id")]


class IncidentStatusInputSerializer(serializers.Serializer):
    """``active`` or ``in_progress`` (checked by the service)."""

    status = serializers.CharField()


class IncidentAssignInputSerializer(serializers.Serializer):
    """``assignee``: a username, ``"me"``, or null to unassign."""

    assignee = serializers.CharField(allow_null=True, allow_blank=True)


class IncidentResolveInputSerializer(serializers.Serializer):
    classification = serializers.ChoiceField(choices=Incident.Classification.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
