"""Serializers of the Microsoft 365 connections API. A credential is write-only: ``secret`` is accepted on
create and on PATCH and never returned, nor is any part of the ciphertext (only its kind and date)."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import serializers

from core.models import Tenant

from ..models import M365Connection, PullCursor, PullRun, Source
from ..permissions import Requirement


class M365ConnectionSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField[Tenant](slug_field="slug", read_only=True)
    organisation = serializers.CharField(source="tenant.name", read_only=True)
    created_by = serializers.StringRelatedField[User]()

    class Meta:
        model = M365Connection
        fields = [
            "id",
            "tenant",
            "organisation",
            "directory_id",
            "client_id",
            "credential_type",
            "certificate_thumbprint",
            "credential_set_at",
            "enabled",
            "created_by",
            "created_at",
            "tested_at",
            "test_ok",
            "test_message",
            "granted_permissions",
            "missing_permissions",
        ]
        read_only_fields = fields


class CredentialInputSerializer(serializers.Serializer):
    credential_type = serializers.ChoiceField(choices=M365Connection.Credential.choices)
    secret = serializers.CharField(
        write_only=True,
        max_length=20000,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="The client secret's value, or the certificate and its unencrypted private key in one PEM.",
    )


class M365ConnectionCreateSerializer(CredentialInputSerializer):
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="The new organisation's name (unless ``tenant`` is given).",
    )
    tenant = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        help_text="An existing organisation to connect instead of creating one.",
    )
    directory_id = serializers.CharField(max_length=100)
    client_id = serializers.CharField(max_length=100)


class M365ConnectionUpdateSerializer(serializers.Serializer):
    """PATCH: ``enabled``, and/or a new credential (``credential_type`` with ``secret``)."""

    enabled = serializers.BooleanField(required=False)
    credential_type = serializers.ChoiceField(choices=M365Connection.Credential.choices, required=False)
    secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=20000,
        trim_whitespace=False,
        style={"input_type": "password"},
    )

    def validate(self, attrs: dict) -> dict:
        if ("secret" in attrs) != ("credential_type" in attrs):
            raise serializers.ValidationError("A new credential needs both credential_type and secret.")
        if not attrs:
            raise serializers.ValidationError(
                "Nothing to change: send enabled, or credential_type and secret."
            )
        return attrs


class MissingPermissionSerializer(serializers.Serializer):
    feature = serializers.CharField()
    permission = serializers.CharField(source="least", help_text="The least-privileged permission.")
    also_accepted = serializers.SerializerMethodField(help_text="Broader permissions that also work.")
    api = serializers.CharField(help_text="The API's resource URI.")
    api_label = serializers.CharField()

    def get_also_accepted(self, requirement: Requirement) -> list[str]:
        return list(requirement.permissions[1:])


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    granted = serializers.ListField(child=serializers.CharField())
    missing = MissingPermissionSerializer(many=True)
    prerequisites = serializers.ListField(
        child=serializers.CharField(),
        help_text="Prerequisites beyond the permissions that a probe found missing (the message-trace "
        "service principal, the Entra ID P1 licence, the Management API), one sentence each with the fix.",
    )


class PullRequestSerializer(serializers.Serializer):
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field: the metaclass pops it
        choices=Source.choices, required=False, allow_blank=True, help_text="One source; none: every source."
    )


class PullQueuedSerializer(serializers.Serializer):
    connection = serializers.IntegerField()
    source = serializers.CharField(allow_blank=True)  # type: ignore[assignment]  # a field, as above
    queued = serializers.BooleanField()


class PullCursorSerializer(serializers.ModelSerializer):
    source_label = serializers.CharField(source="get_source_display")
    lag_seconds = serializers.SerializerMethodField(help_text="now - watermark; null before the first.")
    running = serializers.SerializerMethodField()
    resume_pending = serializers.SerializerMethodField(
        help_text="A pull stopped mid-way; the next one continues from its bookmark."
    )

    class Meta:
        model = PullCursor
        fields = [
            "source",
            "source_label",
            "watermark",
            "lag_seconds",
            "running",
            "running_since",
            "last_attempt_at",
            "last_success_at",
            "consecutive_failures",
            "last_error",
            "last_error_at",
            "events_total",
            "rejected_total",
            "resume_pending",
            "gaps",
        ]
        read_only_fields = fields

    def get_lag_seconds(self, cursor: PullCursor) -> int | None:
        return int(cursor.lag.total_seconds()) if cursor.lag is not None else None

    def get_running(self, cursor: PullCursor) -> bool:
        return cursor.running_since is not None

    def get_resume_pending(self, cursor: PullCursor) -> bool:
        return bool(cursor.state.get("next") or cursor.state.get("after"))


class PullRunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = PullRun
        fields = [
            "id",
            "source",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "resumed",
            "pages",
            "records",
            "accepted",
            "duplicates",
            "rejected",
            "requests",
            "throttled",
            "error",
            "errors",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, run: PullRun) -> float | None:
        return round(run.duration.total_seconds(), 3) if run.duration is not None else None


class ConnectionStatusSerializer(serializers.Serializer):
    connection = serializers.IntegerField()
    enabled = serializers.BooleanField()
    cursors = PullCursorSerializer(many=True)
    runs = PullRunSerializer(many=True)
