"""The application permissions each feature needs, least privilege first (README "Microsoft 365").

An app-only access token lists the application roles granted to the app registration in its ``roles`` claim;
"test connection" compares them with this table and names what is missing. A feature is satisfied by its
least-privileged permission or by any of the broader ones listed after it.
"""

from __future__ import annotations

from dataclasses import dataclass

GRAPH = "https://graph.microsoft.com"
MANAGEMENT = "https://manage.office.com"


@dataclass(frozen=True)
class Requirement:
    feature: str
    api: str  # GRAPH or MANAGEMENT
    permissions: tuple[str, ...]  # least privileged first; any one satisfies the feature

    @property
    def least(self) -> str:
        return self.permissions[0]

    @property
    def api_label(self) -> str:
        return "Microsoft Graph" if self.api == GRAPH else "Office 365 Management APIs"

    def satisfied_by(self, roles: set[str]) -> bool:
        return any(permission in roles for permission in self.permissions)


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("Read verified domains", GRAPH, ("Domain.Read.All", "Directory.Read.All")),
    Requirement("Read member users", GRAPH, ("User.Read.All", "Directory.Read.All", "User.ReadWrite.All")),
    Requirement("Read sent mail (message trace)", GRAPH, ("ExchangeMessageTrace.Read.All",)),
    Requirement("Read sign-ins", GRAPH, ("AuditLog.Read.All",)),
    Requirement("Read inbox rules", GRAPH, ("MailboxSettings.Read", "MailboxSettings.ReadWrite")),
    Requirement("Read the Exchange audit log", MANAGEMENT, ("ActivityFeed.Read",)),
    Requirement("Remove an inbox rule", GRAPH, ("MailboxSettings.ReadWrite",)),
    Requirement("Soft-delete messages", GRAPH, ("Mail.ReadWrite",)),
    Requirement("Revoke sign-in sessions", GRAPH, ("User.RevokeSessions.All", "User.ReadWrite.All")),
    Requirement(
        "Force a password change", GRAPH, ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All")
    ),
    Requirement("Disable the account", GRAPH, ("User.EnableDisableAccount.All", "User.ReadWrite.All")),
)


# Directory roles (template ids, the same in every tenant, as an app-only token's ``wids`` claim lists
# them) that let an app change users' sensitive attributes (passwordProfile, accountEnabled): User
# Administrator for users without an admin role; Privileged Authentication Administrator (or Global
# Administrator) for any user.
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SENSITIVE_ATTRIBUTE_ROLES = frozenset(
    {USER_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}
)
SENSITIVE_FEATURES = ("Force a password change", "Disable the account")


def missing(roles_by_api: dict[str, set[str]]) -> list[Requirement]:
    """The requirements no granted role satisfies."""
    return [req for req in REQUIREMENTS if not req.satisfied_by(roles_by_api.get(req.api, set()))]


def requirement(feature: str) -> Requirement:
    return next(req for req in REQUIREMENTS if req.feature == feature)
