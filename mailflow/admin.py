"""Read-only admin views of mail-flow telemetry: events are written by the ingest service only."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import IngestedEvent, MessageEvent


@admin.register(MessageEvent)
class MessageEventAdmin(ReadOnlyAdmin):
    list_display = ["time", "sender", "recipient_count", "external_count", "verdict", "subject"]
    list_select_related = ["sender"]
    list_filter = ["verdict"]
    search_fields = ["event_id", "sender__address", "subject"]


@admin.register(IngestedEvent)
class IngestedEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "time", "received_at"]
    list_filter = ["type"]
    search_fields = ["event_id"]
