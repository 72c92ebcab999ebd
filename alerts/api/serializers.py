"""Representations of alert policies and alerts for ``/api/v1/``, and the inputs of their actions.

Policy values are validated by :func:`alerts.policy_services.update_policy` (one set of rules for the console
and the API); these serializers only shape output and parse the action inputs.
"""

from __future__ import annotations

from typing import Protocol

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import serializers

from core.models import Tenant
from mailboxes.models import Mailbox

from ..models import Alert, AlertComment, AlertEvidence, AlertPolicy, PolicyOverride
from ..policies import DEFAULTS_BY_KIND

EVIDENCE_LIMIT = 500


class PolicyOverrideSerializer(serializers.ModelSerializer):
    """A mailbox's own thresholds on a policy; ``active`` is false once it has expired."""

    active = serializers.SerializerMethodField()

    class Meta:
        model = PolicyOverride
        fields = ["id", "mailbox_address", "thresholds", "expires_at", "note", "created_at", "active"]

    def get_active(self, override: PolicyOverride) -> bool:
        from django.utils import timezone

        return override.expires_at is None or override.expires_at > timezone.now()


class AlertPolicySerializer(serializers.ModelSerializer):
    """Every setting of a policy, the allowed range of each threshold and the per-mailbox overrides."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    threshold_limits = serializers.SerializerMethodField()
    overrides = PolicyOverrideSerializer(many=True, read_only=True)

    class Meta:
        model = AlertPolicy
        fields = [
            "id",
            "tenant",
            "kind",
            "name",
            "description",
            "category",
            "enabled",
            "severity",
            "thresholds",
            "threshold_limits",
            "aggregation_minutes",
            "action",
            "investigate_mode",
            "rerestrict_after_release",
            "notify_recipients",
            "notify_min_severity",
            "notify_daily_limit",
            "scope",
            "include_mailboxes",
            "include_departments",
            "exclude_mailboxes",
            "exclude_departments",
            "overrides",
            "updated_at",
        ]
        read_only_fields = fields

    def get_threshold_limits(self, policy: AlertPolicy) -> dict[str, dict]:
        spec = DEFAULTS_BY_KIND[policy.kind].thresholds if policy.kind in DEFAULTS_BY_KIND else {}
        return {
            key: {"default": t.default, "minimum": t.minimum, "maximum": t.maximum, "help": t.help}
            for key, t in spec.items()
        }


class PolicyOverrideInputSerializer(serializers.Serializer):
    """``POST /policies/{id}/overrides/``: the thresholds themselves are checked by the service."""

    mailbox_address = serializers.CharField(max_length=320)
    thresholds = serializers.DictField()
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class AlertEvidenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvidence
        fields = ["kind", "event_id", "at"]


class AlertCommentSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()

    class Meta:
        model = AlertComment
        fields = ["id", "author", "body", "created_at"]

    def get_author(self, comment: AlertComment) -> str | None:
        return comment.author.get_username() if comment.author else None


class Triaged(Protocol):
    """A triaged row: an alert, an incident."""

    mailbox: Mailbox
    assigned_to: AbstractBaseUser | None
    resolved_by: AbstractBaseUser | None


class TriagedFields:
    """``user``, ``assigned_to`` and ``resolved_by`` of a triaged row (an alert, an incident): the mailbox as
    id / address / name, the people by username."""

    def get_user(self, row: Triaged) -> dict:
        mailbox = row.mailbox
        return {"id": mailbox.pk, "address": mailbox.address, "display_name": mailbox.display_name}

    def get_assigned_to(self, row: Triaged) -> str | None:
        return row.assigned_to.get_username() if row.assigned_to else None

    def get_resolved_by(self, row: Triaged) -> str | None:
        return row.resolved_by.get_username() if row.resolved_by else None


class AlertSerializer(TriagedFields, serializers.ModelSerializer):
    """An alert as the list shows it: who, which policy, how bad, how many events, where triage stands."""

    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    policy = serializers.SerializerMethodField()
    # Blank until resolved: declared so (a read-only model field loses allow_blank).
    classification = serializers.ChoiceField(
        choices=Alert.Classification.choices, allow_blank=True, read_only=True
    )
    user = serializers.SerializerMethodField()
    assigned_to = serializers.SerializerMethodField()
    resolved_by = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "tenant",
            "title",
            "severity",
            "status",
            "classification",
            "category",
            "policy",
            "user",
            "first_activity_at",
            "last_activity_at",
            "evidence_count",
            "details",
            "assigned_to",
            "restriction",
            "created_at",
            "resolved_at",
            "resolved_by",
        ]
        read_only_fields = fields

    def get_policy(self, alert: Alert) -> dict:
        return {"id": alert.policy_id, "kind": alert.policy.kind, "name": alert.policy.name}


class AlertDetailSerializer(AlertSerializer):
    """An alert with its evidence events (the first :data:`EVIDENCE_LIMIT` by time) and its comments."""

    evidence = serializers.SerializerMethodField()
    comments = AlertCommentSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "evidence", "comments"]
        read_only_fields = fields

    def get_evidence(self, alert: Alert) -> list[dict]:
        return list(AlertEvidenceSerializer(alert.evidence.all()[:EVIDENCE_LIMIT], many=True).data)


class AlertStatusInputSerializer(serializers.Serializer):
    status = serializers.CharField()


class AlertAssignInputSerializer(serializers.Serializer):
    """``assignee``: a username, ``"me"``, or null to unassign."""

    assignee = serializers.CharField(allow_null=True, allow_blank=True)


class AlertCommentInputSerializer(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, trim_whitespace=False)


class AlertResolveInputSerializer(serializers.Serializer):
    classification = serializers.CharField()
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    suppress_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
