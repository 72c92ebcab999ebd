"""Read-only admin views of the directory: every write goes through ``mailboxes.services``."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import AcceptedDomain, Delegation, DirectoryChange, InboxRule, Mailbox, MailboxForwarding, SignIn


@admin.register(AcceptedDomain)
class AcceptedDomainAdmin(ReadOnlyAdmin):
    list_display = ["domain", "tenant", "source", "created_at"]
    list_filter = ["source", "tenant"]


@admin.register(Mailbox)
class MailboxAdmin(ReadOnlyAdmin):
    list_display = ["address", "tenant", "display_name", "department", "vip", "account_enabled", "first_seen"]
    list_filter = ["tenant", "vip", "account_enabled"]
    search_fields = ["address", "display_name"]


@admin.register(InboxRule)
class InboxRuleAdmin(ReadOnlyAdmin):
    list_display = ["rule_id", "mailbox", "name", "enabled", "created_at", "changed_at", "removed_at"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__address", "rule_id", "name"]


@admin.register(MailboxForwarding)
class MailboxForwardingAdmin(ReadOnlyAdmin):
    list_display = ["mailbox", "forward_to", "keep_copy", "changed_at"]
    list_select_related = ["mailbox"]


@admin.register(Delegation)
class DelegationAdmin(ReadOnlyAdmin):
    list_display = ["mailbox", "delegate", "access", "added_at", "removed_at"]
    list_select_related = ["mailbox"]


@admin.register(SignIn)
class SignInAdmin(ReadOnlyAdmin):
    list_display = ["time", "mailbox", "ip", "country", "client_app", "result"]
    list_select_related = ["mailbox"]
    list_filter = ["result", "client_app"]


@admin.register(DirectoryChange)
class DirectoryChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "mailbox", "kind", "key", "operation", "applied", "source"]
    list_select_related = ["mailbox"]
    list_filter = ["kind", "operation", "source"]
