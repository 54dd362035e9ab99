"""Encryption at rest for the credentials the dashboard must send back to Coalesce.

Design (see README, "Credentials at rest"):
- AES-256-GCM with a fresh 12-byte nonce per encryption.
- Keys come from CREDENTIALS_ENCRYPTION_KEYS, "kid:base64key" pairs, newest first. The
  first key encrypts; any key in the ring decrypts, chosen by the kid stored with the
  ciphertext, so rotation never has to try keys one after another.
- Stored text is "v1:<kid>:<base64url(nonce + ciphertext + tag)>".
- Associated data binds each ciphertext to its model, an immutable row UUID and its field.
  A ciphertext copied to another row or another field fails to decrypt instead of
  silently handing out someone else's secret.
- A failure raises CredentialDecryptionError and never returns the stored text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32


class KeyRingError(Exception):
    """CREDENTIALS_ENCRYPTION_KEYS is missing or malformed. Never contains key material."""


class CredentialDecryptionError(Exception):
    """A stored secret could not be decrypted (wrong key, unknown kid, or a moved ciphertext).

    Carries where the ciphertext was found and which kid it names, never any data.
    """

    def __init__(self, *, model: str, row: str, field: str, kid: str, reason: str):
        self.model, self.row, self.field, self.kid = model, row, field, kid
        super().__init__(f"Cannot decrypt {model} {row} field {field!r} (key id {kid!r}): {reason}")


@dataclass(frozen=True, repr=False)
class KeyRing:
    """The parsed key ring: `primary` encrypts, every kid in `keys` decrypts."""

    keys: dict[str, bytes]
    primary: str

    def __repr__(self) -> str:
        return f"<KeyRing primary={self.primary!r} kids={list(self.keys)!r}>"


def parse_key_ring(value: str) -> KeyRing:
    """Parse "kid:base64key,kid:base64key" (newest first). Raises KeyRingError."""
    if not value or not value.strip():
        raise KeyRingError("CREDENTIALS_ENCRYPTION_KEYS is not set.")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(value.split(","), start=1):
        kid, sep, encoded = entry.strip().partition(":")
        if not sep or not kid or not encoded:
            raise KeyRingError(f"Entry {position} is not in the form keyid:base64key.")
        if not kid.replace("-", "").replace("_", "").isalnum():
            raise KeyRingError(f"Entry {position}: key ids use letters, digits, - and _ only.")
        if kid in keys:
            raise KeyRingError(f"Key id {kid!r} appears twice; never reuse a key id.")
        keys[kid] = _decode_key(kid, encoded)
    return KeyRing(keys=keys, primary=next(iter(keys)))


def _decode_key(kid: str, encoded: str) -> bytes:
    try:
        # Accept both alphabets: `generate_credentials_key` prints url-safe base64, while
        # `openssl rand -base64 32` prints the standard one.
        raw = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"Key {kid!r} is not valid base64.") from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"Key {kid!r} is {len(raw)} bytes; it must be {KEY_BYTES}.")
    return raw


@functools.cache
def _cached_ring(value: str) -> KeyRing:
    return parse_key_ring(value)


def key_ring() -> KeyRing:
    """The ring from settings, parsed once per distinct value (tests override settings)."""
    return _cached_ring(settings.CREDENTIALS_ENCRYPTION_KEYS)


def generate_key(kid: str | None = None) -> str:
    """A new "kid:key" entry for CREDENTIALS_ENCRYPTION_KEYS."""
    kid = kid or "k" + secrets.token_hex(4)
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode('ascii')}"


def associated_data(model: str, row: str, field: str) -> bytes:
    return f"{VERSION}|{model}|{row}|{field}".encode()


def encrypt(
    plaintext: str, *, model: str, row: str, field: str, ring: KeyRing | None = None
) -> str:
    """Encrypt with the primary key, bound to (model, row, field)."""
    ring = ring or key_ring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[ring.primary]).encrypt(
        nonce, plaintext.encode("utf-8"), associated_data(model, row, field)
    )
    blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return f"{VERSION}:{ring.primary}:{blob}"


def kid_of(stored: str) -> str:
    """The key id a stored ciphertext names ("" when it is not in our format)."""
    parts = stored.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == VERSION else ""


def decrypt(stored: str, *, model: str, row: str, field: str, ring: KeyRing | None = None) -> str:
    """Decrypt a value written by `encrypt` for the same (model, row, field).

    Raises CredentialDecryptionError on any failure; never returns the stored text.
    """
    ring = ring or key_ring()
    kid = kid_of(stored)

    def fail(reason: str) -> CredentialDecryptionError:
        return CredentialDecryptionError(model=model, row=row, field=field, kid=kid, reason=reason)

    if not kid:
        raise fail("not a ciphertext in the v1 format")
    if kid not in ring.keys:
        raise fail("this key id is not in CREDENTIALS_ENCRYPTION_KEYS")
    try:
        raw = base64.urlsafe_b64decode(stored.split(":", 2)[2].encode("ascii"))
        plaintext = AESGCM(ring.keys[kid]).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(model, row, field)
        )
    except (InvalidTag, ValueError, binascii.Error):
        reason = "authentication failed (wrong key, or copied from another row or field)"
        raise fail(reason) from None
    return plaintext.decode("utf-8")
