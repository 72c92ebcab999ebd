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


class MailboxRowAdmin(ReadOnlyAdmin):
    """A row of one mailbox: the list shows the mailbox, joined in the list's query (not one query a row)."""

    list_select_related = ["mailbox"]


@admin.register(InboxRule)
class InboxRuleAdmin(MailboxRowAdmin):
    list_display = ["rule_id", "mailbox", "name", "enabled", "created_at", "changed_at", "removed_at"]
    search_fields = ["mailbox__address", "rule_id", "name"]


@admin.register(MailboxForwarding)
class MailboxForwardingAdmin(MailboxRowAdmin):
    list_display = ["mailbox", "forward_to", "keep_copy", "changed_at"]


@admin.register(Delegation)
class DelegationAdmin(MailboxRowAdmin):
    list_display = ["mailbox", "delegate", "access", "added_at", "removed_at"]


@admin.register(SignIn)
class SignInAdmin(MailboxRowAdmin):
    list_display = ["time", "mailbox", "ip", "country", "client_app", "result"]
    list_filter = ["result", "client_app"]


@admin.register(DirectoryChange)
class DirectoryChangeAdmin(MailboxRowAdmin):
    list_display = ["at", "mailbox", "kind", "key", "operation", "applied", "source"]
    list_filter = ["kind", "operation", "source"]
