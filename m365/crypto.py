"""Encryption at rest of connector credentials (client secrets, certificate private keys).

Keys come from the environment: ``CONNECTOR_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys
(``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``); the first
encrypts, all decrypt, so a key can be rotated by putting the new one first and running
``manage.py m365_rotate_secrets``. Without it (the embedded demo and tests) a key is derived from
``SECRET_KEY`` with HKDF, so the ciphertext is still useless without the environment.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .exceptions import M365Error


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"soc-console connector secrets")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        return MultiFernet([Fernet(_derived_key(secret_key))])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise M365Error("CONNECTOR_ENCRYPTION_KEYS holds a value that is not a Fernet key.") from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.CONNECTOR_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise M365Error(
            "The stored credential cannot be decrypted with the configured keys "
            "(CONNECTOR_ENCRYPTION_KEYS or SECRET_KEY changed): enter the credential again."
        ) from exc


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first key."""
    return _current().rotate(ciphertext.encode()).decode()
