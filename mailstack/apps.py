from django.apps import AppConfig


class MailstackConfig(AppConfig):
    name = "mailstack"
    verbose_name = "Postfix + Dovecot + Rspamd connector"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - register the mailstack.* tasks in every process
