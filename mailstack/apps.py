from django.apps import AppConfig


class MailstackConfig(AppConfig):
    name = "mailstack"
    verbose_name = "Postfix + Dovecot + Rspamd connector"

    def ready(self) -> None:
        from . import (
            audit_kinds,  # noqa: F401 - declare the audit actions and their feed kinds
            tasks,  # noqa: F401 - register the mailstack.* tasks in every process
        )
