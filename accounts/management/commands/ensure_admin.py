"""Create the first administrator on the first start.

With PUSHFLOW_ADMIN_USER / PUSHFLOW_ADMIN_PASSWORD set, that user is created (or
its password set, if the variables changed); without them, when no superuser
exists yet, an `admin` user gets a generated password printed once.
"""
import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first administrator if there is none."

    def handle(self, *args, **options):
        users = get_user_model().objects
        name = os.environ.get("PUSHFLOW_ADMIN_USER", "").strip()
        password = os.environ.get("PUSHFLOW_ADMIN_PASSWORD", "")
        if name and password:
            user, created = users.get_or_create(username=name, defaults={"is_staff": True, "is_superuser": True})
            if created or not user.check_password(password):
                user.set_password(password)
                user.is_staff = user.is_superuser = user.is_active = True
                user.save()
                self.stdout.write(f"administrator {name!r} {'created' if created else 'password updated'}")
            return
        if users.filter(is_superuser=True).exists():
            return
        generated = secrets.token_urlsafe(12)
        users.create_superuser(username="admin", email="", password=generated)
        self.stdout.write(f"\n  Created administrator 'admin' with password: {generated}\n  (shown once; change it at /admin/)\n")
