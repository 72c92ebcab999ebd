import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from core.roles import ADMINISTRATOR, OPERATOR, READER, sync_roles
from core.services import record_audit

LOGINS = (("reader", READER), ("operator", OPERATOR), ("admin", ADMINISTRATOR))


class Command(BaseCommand):
    help = "Create (or reset) one login per role and print the usernames and passwords (demos, first setup)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password", help="use this password for all three (default: a new random one each)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sync_roles()
        user_model = get_user_model()
        rows = []
        with transaction.atomic():
            for username, role in LOGINS:
                password = options["password"] or secrets.token_urlsafe(9)
                user, created = user_model.objects.get_or_create(username=username)
                user.set_password(password)
                user.is_staff = role == ADMINISTRATOR
                user.save()
                user.groups.set([Group.objects.get(name=role)])
                record_audit(
                    "core.login.created" if created else "core.login.password_reset",
                    target=user,
                    after={"role": role},
                )
                rows.append((role, username, password))
        self.stdout.write("Logins (one per role):")
        for role, username, password in rows:
            self.stdout.write(f"  {role:<24} username: {username:<10} password: {password}")
