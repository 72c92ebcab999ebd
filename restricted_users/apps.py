from django.apps import AppConfig


class RestrictedUsersConfig(AppConfig):
    name = "restricted_users"
    verbose_name = "Restricted users"
