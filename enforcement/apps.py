from core import appconfig


class EnforcementConfig(appconfig.DomainAppConfig):
    name = "enforcement"
    verbose_name = "Enforcement (Postfix policy service)"
    registers = ("tasks",)
