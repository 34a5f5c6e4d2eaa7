"""HMAC signatures on pushed payloads: Standard Webhooks, GitHub and Stripe schemes.

A listener with auth `hmac` holds several signing keys at once (rotation): a
signature made with any of them is accepted. Comparisons are constant-time.
Timestamps outside the tolerance window are refused, so a captured request
cannot be replayed later.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time


class SignatureError(Exception):
    pass


def _standard_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("a signing key of this listener is not valid base64 after 'whsec_'") from None
    return secret.encode()


def _check_timestamp(value: str, tolerance: int, now: float) -> int:
    try:
        timestamp = int(value)
    except (TypeError, ValueError):
        raise SignatureError("the signature timestamp is missing or not a number") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"the signature timestamp is outside the {tolerance} s tolerance window")
    return timestamp


def _any_matches(expected: list[bytes], given: list[bytes]) -> bool:
    matched = False
    for candidate in given:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate, wanted)
    return matched


# What each scheme signs, and how the signature is written (shared by checking and by the listener
# page's test box, which signs a test payload as the partner would).


def _standard_digest(key: str, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(_standard_key(key), signed, hashlib.sha256).digest())


def _github_digest(key: str, body: bytes) -> bytes:
    return b"sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()


def _stripe_digest(key: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest().encode()


def verify_standard(headers: dict, body: bytes, keys: list[str], tolerance: int, now: float) -> None:
    msg_id = headers.get("HTTP_WEBHOOK_ID", "")
    timestamp = headers.get("HTTP_WEBHOOK_TIMESTAMP", "")
    signatures = headers.get("HTTP_WEBHOOK_SIGNATURE", "")
    if not msg_id or not signatures:
        raise SignatureError("missing webhook-id or webhook-signature header")
    _check_timestamp(timestamp, tolerance, now)
    expected = [_standard_digest(k, msg_id, timestamp, body) for k in keys]
    given = [part.split(",", 1)[1].encode() for part in signatures.split() if part.startswith("v1,")]
    if not _any_matches(expected, given):
        raise SignatureError("the webhook-signature does not match any signing key")


def verify_github(headers: dict, body: bytes, keys: list[str], tolerance: int, now: float) -> None:
    given = headers.get("HTTP_X_HUB_SIGNATURE_256", "")
    if not given.startswith("sha256="):
        raise SignatureError("missing X-Hub-Signature-256 header (sha256=...)")
    if not _any_matches([_github_digest(k, body) for k in keys], [given.encode()]):
        raise SignatureError("X-Hub-Signature-256 does not match any signing key")


def verify_stripe(headers: dict, body: bytes, keys: list[str], tolerance: int, now: float) -> None:
    header = headers.get("HTTP_STRIPE_SIGNATURE", "")
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    timestamp = next((v for k, v in parts if k.strip() == "t"), "")
    given = [v.strip().encode() for k, v in parts if k.strip() == "v1"]
    if not given:
        raise SignatureError("missing Stripe-Signature header with t= and v1=")
    _check_timestamp(timestamp, tolerance, now)
    if not _any_matches([_stripe_digest(k, timestamp, body) for k in keys], given):
        raise SignatureError("Stripe-Signature does not match any signing key")


def signature_headers(signature: dict, key: str, body: bytes, msg_id: str, now: float | None = None) -> dict[str, str]:
    """The headers a sender signing `body` with `key` under the listener's scheme would send."""
    scheme = (signature or {}).get("scheme", "standard")
    timestamp = str(int(time.time() if now is None else now))
    if scheme == "github":
        return {"X-Hub-Signature-256": _github_digest(key, body).decode()}
    if scheme == "stripe":
        return {"Stripe-Signature": f"t={timestamp},v1={_stripe_digest(key, timestamp, body).decode()}"}
    if scheme != "standard":
        raise SignatureError(f"unknown signature scheme {scheme!r}")
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{_standard_digest(key, msg_id, timestamp, body).decode()}"}


SCHEMES = {"standard": verify_standard, "github": verify_github, "stripe": verify_stripe}


def verify_signature(signature: dict, keys: list[str], headers: dict, body: bytes, now: float | None = None) -> None:
    """Raise SignatureError unless `body` carries a valid signature under one of `keys`."""
    scheme = (signature or {}).get("scheme", "standard")
    verify = SCHEMES.get(scheme)
    if verify is None:
        raise SignatureError(f"unknown signature scheme {scheme!r}")
    if not keys:
        raise SignatureError("this listener has no signing keys")
    tolerance = int((signature or {}).get("tolerance", 300))
    verify(headers, body, [str(k) for k in keys], tolerance, time.time() if now is None else now)
