from core import appconfig


class MailstackConfig(appconfig.DomainAppConfig):
    name = "mailstack"
    verbose_name = "Postfix + Dovecot + Rspamd connector"
