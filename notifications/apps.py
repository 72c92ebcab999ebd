from core import appconfig


class NotificationsConfig(appconfig.DomainAppConfig):
    name = "notifications"
    verbose_name = "Notifications: email and webhooks"
