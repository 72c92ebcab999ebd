"""Representations of investigations and remediation actions for ``/api/v1/``, and the inputs of the action
endpoints. Decisions are validated by :mod:`investigations.action_services` (one set of rules for the console
and the API); these serializers only shape output and parse inputs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import Tenant

from ..action_services import BULK_LIMIT
from ..models import AnalyzerRun, Finding, Investigation, MailCluster, RemediationAction


@extend_schema_field(OpenApiTypes.STR)
class UsernameField(serializers.RelatedField):
    """A person as their username (null when unset or deleted): declared as a nullable string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return value.get_username()


class RemediationActionSerializer(serializers.ModelSerializer):
    """An action with its decision, execution and undo; ``undoable``: whether ``POST …/undo/`` may work."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    user = serializers.CharField(source="investigation.mailbox.address", read_only=True)
    action_type_label = serializers.CharField(source="get_action_type_display", read_only=True)
    status = serializers.ChoiceField(
        choices=RemediationAction.Status.choices,
        source="effective_status",
        read_only=True,
        help_text="As it reads now: a Pending action past its expiry is expired, with or without beat.",
    )
    status_label = serializers.CharField(source="get_effective_status_display", read_only=True)
    decided_by = UsernameField(read_only=True)
    undone_by = UsernameField(read_only=True)
    reversible = serializers.BooleanField(source="is_reversible", read_only=True)
    undoable = serializers.BooleanField(source="is_undoable", read_only=True)

    class Meta:
        model = RemediationAction
        fields = [
            "id",
            "tenant",
            "investigation",
            "user",
            "finding",
            "action_type",
            "action_type_label",
            "target",
            "target_label",
            "status",
            "status_label",
            "proposed_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "decision_comment",
            "running_since",
            "attempts",
            "next_attempt_at",
            "result",
            "manual_step",
            "prior_state",
            "completed_at",
            "undone_by",
            "undone_at",
            "reversible",
            "undoable",
        ]
        read_only_fields = fields


class FindingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Finding
        fields = [
            "id",
            "analyzer",
            "entity_type",
            "entity_key",
            "entity_label",
            "verdict",
            "reasons",
            "data",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MailClusterSerializer(serializers.ModelSerializer):
    class Meta:
        model = MailCluster
        fields = [
            "id",
            "fingerprint",
            "basis",
            "label",
            "verdict",
            "message_count",
            "internal_recipients",
            "external_recipients",
            "verdict_counts",
            "first_at",
            "last_at",
        ]
        read_only_fields = fields


class AnalyzerRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalyzerRun
        fields = [
            "id",
            "run_number",
            "analyzer",
            "started_at",
            "duration_ms",
            "outcome",
            "findings",
            "summary",
            "error",
        ]
        read_only_fields = fields


class InvestigationSerializer(serializers.ModelSerializer):
    """An investigation as the list shows it, with its counts (annotated: no query per row)."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    user = serializers.CharField(source="mailbox.address", read_only=True)
    # Blank while running: declared so (a read-only model field loses allow_blank).
    verdict = serializers.ChoiceField(choices=Investigation.Verdict.choices, allow_blank=True, read_only=True)
    display_name = serializers.CharField(source="mailbox.display_name", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    trigger = serializers.SerializerMethodField()
    started_by = UsernameField(read_only=True)
    duration_seconds = serializers.SerializerMethodField()
    threat_count = serializers.IntegerField(read_only=True)
    action_count = serializers.IntegerField(read_only=True)
    pending_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Investigation
        fields = [
            "id",
            "tenant",
            "user",
            "display_name",
            "status",
            "status_label",
            "verdict",
            "risk_score",
            "trigger",
            "started_by",
            "created_at",
            "started_at",
            "ended_at",
            "updated_at",
            "duration_seconds",
            "threat_count",
            "action_count",
            "pending_count",
        ]
        read_only_fields = fields

    def get_trigger(self, investigation: Investigation) -> dict | None:
        alert = investigation.trigger_alert
        if alert is None:
            return None
        return {"alert": alert.pk, "title": alert.title, "severity": alert.severity}

    def get_duration_seconds(self, investigation: Investigation) -> float | None:
        duration = investigation.duration
        return round(duration.total_seconds(), 3) if duration is not None else None


class InvestigationDetailSerializer(InvestigationSerializer):
    """Everything the detail page shows: alerts, findings with verdicts and reasons, clusters, the analyzer
    log and the actions."""

    alerts = serializers.SerializerMethodField()
    findings = FindingSerializer(many=True, read_only=True)
    clusters = MailClusterSerializer(many=True, read_only=True)
    runs = AnalyzerRunSerializer(many=True, read_only=True)
    actions = RemediationActionSerializer(many=True, read_only=True)
    stopped_by = UsernameField(read_only=True)

    class Meta(InvestigationSerializer.Meta):
        fields = [
            *InvestigationSerializer.Meta.fields,
            "risk_reasons",
            "failed_analyzers",
            "run_count",
            "stopped_by",
            "stop_comment",
            "alerts",
            "findings",
            "clusters",
            "runs",
            "actions",
        ]
        read_only_fields = fields

    def get_alerts(self, investigation: Investigation) -> list[dict]:
        return [
            {
                "id": alert.pk,
                "title": alert.title,
                "severity": alert.severity,
                "status": alert.status,
                "last_activity_at": alert.last_activity_at,
            }
            for alert in investigation.alerts.all()
        ]


class CommentInputSerializer(serializers.Serializer):
    """``approve`` (comment optional) and ``reject`` / ``stop`` (the service requires one)."""

    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class UndoInputSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=4000)


class ManualInputSerializer(serializers.Serializer):
    """``done`` true: the manual step was done by hand (Completed); false: it failed (a comment is due)."""

    done = serializers.BooleanField()
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class BulkDecisionInputSerializer(serializers.Serializer):
    """``POST /actions/decide/``: one decision on up to 500 actions of one type."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=BULK_LIMIT
    )
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
