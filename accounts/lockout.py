"""Login lockout: after too many failed passwords for one user name, refuse it for a while.

Every password check in Pushflow goes through Django's authenticate() (login page,
token endpoint, HTTP Basic on the API and on listeners), so the lockout lives in an
authentication backend and in the `user_login_failed` signal.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.utils import timezone

from .models import LoginFailure


def _window_start():
    return timezone.now() - timedelta(seconds=settings.PUSHFLOW_LOCKOUT_SECONDS)


def is_locked(username: str) -> bool:
    if not username or settings.PUSHFLOW_LOCKOUT_FAILURES <= 0:
        return False
    recent = LoginFailure.objects.filter(username=username, at__gte=_window_start()).count()
    return recent >= settings.PUSHFLOW_LOCKOUT_FAILURES


def lockout_message() -> str:
    minutes = max(1, round(settings.PUSHFLOW_LOCKOUT_SECONDS / 60))
    return f"too many failed logins for this account; try again in {minutes} minutes"


class LockoutModelBackend(ModelBackend):
    """Django's backend, refusing a locked user name before its password is checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if is_locked(username or kwargs.get("login", "")):
            raise PermissionDenied(lockout_message())  # stops the backend chain: no other backend is tried
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def remember_failure(sender, credentials, request=None, **kwargs):
    username = (credentials or {}).get("username") or ""
    if username:
        addr = request.META.get("REMOTE_ADDR", "") if request is not None else ""
        LoginFailure.objects.create(username=username[:150], remote_addr=addr[:64])
        LoginFailure.objects.filter(at__lt=_window_start() - timedelta(days=1)).delete()


@receiver(user_logged_in)
def forget_failures(sender, user, **kwargs):
    LoginFailure.objects.filter(username=user.get_username()).delete()
