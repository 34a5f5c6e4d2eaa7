"""Signatures: Standard Webhooks headers on outgoing events, and expiring download URLs for kept outputs.

Webhooks: the secret is `whsec_` + base64(24 random bytes); the signature is
`v1,` + base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}.{body}")), as in
https://www.standardwebhooks.com/. Download URLs carry `expires` (Unix seconds) and
`signature` (HMAC-SHA256 of the output id and expiry with a key derived from
SECRET_KEY); nothing else is needed to fetch the file, and nothing else opens it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

from django.conf import settings
from django.utils.crypto import salted_hmac

SECRET_PREFIX = "whsec_"
DOWNLOAD_SALT = "pushflow.events.output-download"


class DownloadRefused(Exception):
    """A download URL that does not open the file; `reason` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def new_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_key(secret: str) -> bytes:
    return base64.b64decode(secret[len(SECRET_PREFIX):]) if secret.startswith(SECRET_PREFIX) else secret.encode()


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(webhook_key(secret), signed, hashlib.sha256).digest()).decode()


def webhook_headers(secrets: str | list[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers; with several secrets (during a rotation) one space-separated `v1,`
    signature each, so a receiver holding any of them verifies."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    secrets = [secrets] if isinstance(secrets, str) else secrets
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(webhook_signature(s, msg_id, timestamp, body) for s in secrets)}


def _download_signature(output_id: int, expires: int) -> str:
    return salted_hmac(DOWNLOAD_SALT, f"{output_id}:{expires}", algorithm="sha256").hexdigest()


def download_query(output_id: int, seconds: int | None = None, now: float | None = None) -> tuple[str, int]:
    """The `expires=...&signature=...` query of a download URL, and its expiry (Unix seconds)."""
    seconds = settings.PUSHFLOW_DOWNLOAD_URL_SECONDS if seconds is None else seconds
    expires = int((time.time() if now is None else now) + seconds)
    return urlencode({"expires": expires, "signature": _download_signature(output_id, expires)}), expires


def check_download(output_id: int, expires: str | None, signature: str | None, now: float | None = None) -> None:
    """Raise DownloadRefused unless `signature` signs this output and `expires` has not passed."""
    if not expires or not signature:
        raise DownloadRefused("the download URL needs its expires and signature parameters")
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        raise DownloadRefused("the download URL's expires parameter is not a time")
    expected = _download_signature(output_id, int(expires)).encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise DownloadRefused("the download URL's signature does not match (altered or not issued here)")
    if int(expires) < (time.time() if now is None else now):
        raise DownloadRefused("the download URL has expired; ask for a new one")


def base_url(request=None) -> str:
    """Where this server is reached from outside: PUSHFLOW_PUBLIC_URL, else the request's host."""
    base = settings.PUSHFLOW_PUBLIC_URL.rstrip("/")
    if not base and request is not None:
        base = request.build_absolute_uri("/").rstrip("/")
    return base or f"http://127.0.0.1:{settings.PUSHFLOW_PORT}"


def download_url(output_id: int, request=None) -> tuple[str, int]:
    """The absolute signed download URL of a kept output, and when it expires (Unix seconds)."""
    query, expires = download_query(output_id)
    return f"{base_url(request)}/api/v1/outputs/{output_id}/download?{query}", expires
