from django.contrib.admin.apps import AdminConfig


class SuperuserAdminConfig(AdminConfig):
    """Django's admin app with the superuser-only site of :mod:`soc_console.admin_site`."""

    default_site = "soc_console.admin_site.SuperuserAdminSite"
