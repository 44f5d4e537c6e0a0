"""Encryption of secrets at rest with Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS)
    if not keys:
        # Development fallback: a stable key derived from SECRET_KEY.
        digest = hashlib.sha256(("rowbell-secrets:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("This secret cannot be decrypted with the configured ENCRYPTION_KEYS.") from exc


def mask(secret: str, visible: int = 4) -> str:
    """What the UI and admin show of a secret: never the whole of it."""
    if not secret:
        return ""
    if visible == 0 or len(secret) <= visible * 3:
        return "•" * 8
    return secret[:visible] + "•" * 8 + secret[-visible:]
