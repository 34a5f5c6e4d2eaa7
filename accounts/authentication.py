"""Who is calling: Bearer tokens and HTTP Basic, for the API and for listeners.

Tokens and passwords are checked against the database once and then remembered
for a few seconds per process (see user_for_token and user_for_basic).
Password hashing (PBKDF2) costs tens of milliseconds by design; a partner that
pushes thousands of payloads with Basic auth would spend most of its time there.
A successful Basic check is remembered for a short time, keyed by an HMAC of the
header (never the password itself), in process memory only.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import DatabaseError
from django.utils import timezone
from rest_framework import authentication, exceptions

from lib.refresh_ahead import serves_without_loading

from .models import ApiToken, hash_token

BASIC_CACHE_SECONDS = 60
BASIC_CACHE_MAX = 4096


@dataclass(frozen=True)
class Credentials:
    scheme: str  # "bearer" | "basic" | "" (none given)
    value: str


def parse_authorization(header: str | None) -> Credentials:
    if not header:
        return Credentials("", "")
    scheme, _, value = header.strip().partition(" ")
    return Credentials(scheme.lower(), value.strip())


_token_cache: dict[str, tuple[float, object]] = {}
_token_due: set[str] = set()  # tokens the next user_for_token checks again, ahead of their time


def remembered_token_user(raw: str):
    """The user of a token this process checked a moment ago and still remembers, or None
    (unknown, expired, or not checked lately): the database is not asked. Once in an entry's
    last quarter it says None (lib/refresh_ahead.py), so that the caller's next user_for_token (on a
    thread) checks the token again before the entry runs out: a steady stream of pushes on
    the event loop (listeners/loop_ingest.py) never finds it gone all at once."""
    if not raw:
        return None
    key = hash_token(raw)
    hit = _token_cache.get(key)
    if hit is None or not serves_without_loading(hit[0], time.monotonic(), settings.PUSHFLOW_TOKEN_CACHE_SECONDS,
                                                 key, _token_due):
        return None
    return hit[1]


def user_for_token(raw: str):
    """The active user owning an unexpired token, or None.

    A valid token is remembered in this process for PUSHFLOW_TOKEN_CACHE_SECONDS
    (never past its expiry), so a partner pushing thousands of payloads costs one
    lookup, not thousands. Invalid tokens are not remembered.
    """
    if not raw:
        return None
    key = hash_token(raw)
    now = time.monotonic()
    hit = _token_cache.get(key)
    if hit is not None and hit[0] > now and key not in _token_due:
        return hit[1]
    try:
        token = ApiToken.objects.select_related("user").filter(key_hash=key).first()
    except DatabaseError:
        if hit is not None and hit[0] > now:
            return hit[1]  # checked again ahead of its time: the entry still serves until then
        raise
    _token_due.discard(key)
    if token is None or token.expired or not token.user.is_active:
        _token_cache.pop(key, None)
        return None
    ttl = min(settings.PUSHFLOW_TOKEN_CACHE_SECONDS, (token.expires_at - timezone.now()).total_seconds())
    if ttl > 0:
        if len(_token_cache) >= BASIC_CACHE_MAX:
            _token_cache.clear()
        _token_cache[key] = (now + ttl, token.user)
    return token.user


class _BasicCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, float]] = {}

    def _key(self, value: str) -> str:
        return hmac.new(settings.SECRET_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()

    def get(self, value: str) -> int | None:
        key = self._key(value)
        with self._lock:
            hit = self._entries.get(key)
            if hit and hit[1] > time.monotonic():
                return hit[0]
            self._entries.pop(key, None)
        return None

    def put(self, value: str, user_id: int) -> None:
        with self._lock:
            if len(self._entries) >= BASIC_CACHE_MAX:
                self._entries.clear()
            self._entries[self._key(value)] = (user_id, time.monotonic() + BASIC_CACHE_SECONDS)


basic_cache = _BasicCache()


def user_for_basic(value: str):
    """The active user named by a Basic credential, or None."""
    user_id = basic_cache.get(value)
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is not None:
            return user
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        return None
    basic_cache.put(value, user.pk)
    return user


def user_from_authorization(header: str | None):
    """The user an Authorization header proves, or None (missing, unknown or wrong)."""
    creds = parse_authorization(header)
    if creds.scheme == "bearer":
        return user_for_token(creds.value)
    if creds.scheme == "basic":
        return user_for_basic(creds.value)
    return None


def issue_token(login: str, password: str):
    """Check a login and password and issue a token: (raw token, expires_at) or None."""
    user = authenticate(username=login, password=password)
    if user is None or not user.is_active:
        return None
    token, raw = ApiToken.issue(user, settings.PUSHFLOW_TOKEN_TTL_SECONDS)
    return raw, token.expires_at


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a token from POST /api/v1/token."""

    def authenticate(self, request):
        creds = parse_authorization(request.META.get("HTTP_AUTHORIZATION"))
        if creds.scheme != "bearer":
            return None
        user = user_for_token(creds.value)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        ApiToken.objects.filter(key_hash=hash_token(creds.value)).update(last_used_at=timezone.now())
        return user, None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class CachedBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic with the short-lived verification cache above."""

    def authenticate(self, request):
        creds = parse_authorization(request.META.get("HTTP_AUTHORIZATION"))
        if creds.scheme != "basic":
            return None
        user = user_for_basic(creds.value)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        return user, None
