"""Read-only admin views of mail-flow telemetry: events are written by the ingest service only."""

from django.contrib import admin
from django.http import HttpRequest

from .models import IngestedEvent, MessageEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


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
