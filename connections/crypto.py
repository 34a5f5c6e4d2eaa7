"""Encryption of connection and listener secrets at rest (Fernet, with key rotation).

Keys come from settings (PUSHFLOW_ENCRYPTION_KEYS, newest first). Decryption
tries every key, so old rows stay readable after a new key is put in front;
`rotate` re-encrypts a token with the newest key.
"""
from __future__ import annotations

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretsUnreadable(Exception):
    pass


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in settings.PUSHFLOW_ENCRYPTION_KEYS])


def encrypt_secrets(values: dict) -> str:
    if not values:
        return ""
    return _fernet().encrypt(orjson.dumps(values)).decode()


def decrypt_secrets(token: str) -> dict:
    if not token:
        return {}
    try:
        return orjson.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable("stored secrets cannot be decrypted with the configured keys") from None


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode() if token else ""
