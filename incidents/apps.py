from core import appconfig


class IncidentsConfig(appconfig.DomainAppConfig):
    name = "incidents"
    verbose_name = "Incidents"
