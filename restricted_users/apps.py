from core import appconfig


class RestrictedUsersConfig(appconfig.DomainAppConfig):
    name = "restricted_users"
    verbose_name = "Restricted users"
