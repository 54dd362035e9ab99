from __future__ import annotations

import base64
import os

import pytest

from runs import encryption
from runs.encryption import CredentialDecryptionError, KeyRingError, parse_key_ring
from runs.models import EnvironmentProfile


def _key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


CTX = {"model": "runs.environmentprofile", "row": "1c6e", "field": "snowflake_password"}


def test_it_round_trips():
    ring = parse_key_ring(_key("k1"))
    stored = encryption.encrypt("hunter2-secret", ring=ring, **CTX)
    assert stored.startswith("v1:k1:")
    assert "hunter2" not in stored
    assert encryption.decrypt(stored, ring=ring, **CTX) == "hunter2-secret"


def test_it_uses_a_fresh_nonce_each_time():
    ring = parse_key_ring(_key("k1"))
    first = encryption.encrypt("same", ring=ring, **CTX)
    assert first != encryption.encrypt("same", ring=ring, **CTX)


@pytest.mark.parametrize("moved", [{"row": "other-row"}, {"field": "private_key"},
                                   {"model": "runs.run"}])
def test_it_refuses_a_ciphertext_moved_elsewhere(moved):
    ring = parse_key_ring(_key("k1"))
    stored = encryption.encrypt("hunter2-secret", ring=ring, **CTX)
    with pytest.raises(CredentialDecryptionError) as info:
        encryption.decrypt(stored, ring=ring, **{**CTX, **moved})
    assert "hunter2" not in str(info.value)
    assert stored not in str(info.value)


def test_it_refuses_an_unknown_key_id_without_returning_the_stored_text():
    stored = encryption.encrypt("hunter2-secret", ring=parse_key_ring(_key("old")), **CTX)
    with pytest.raises(CredentialDecryptionError, match="not in CREDENTIALS_ENCRYPTION_KEYS"):
        encryption.decrypt(stored, ring=parse_key_ring(_key("new")), **CTX)


def test_it_refuses_a_wrong_key_with_the_same_id():
    stored = encryption.encrypt("hunter2-secret", ring=parse_key_ring(_key("k1")), **CTX)
    with pytest.raises(CredentialDecryptionError, match="authentication failed"):
        encryption.decrypt(stored, ring=parse_key_ring(_key("k1")), **CTX)


def test_it_refuses_plain_text_in_a_secret_column():
    with pytest.raises(CredentialDecryptionError, match="not a ciphertext"):
        encryption.decrypt("hunter2-secret", ring=parse_key_ring(_key("k1")), **CTX)


def test_it_decrypts_with_an_older_key_and_encrypts_with_the_newest():
    old = _key("old")
    stored = encryption.encrypt("hunter2-secret", ring=parse_key_ring(old), **CTX)
    ring = parse_key_ring(f"{_key('new')},{old}")
    assert ring.primary == "new"
    assert encryption.decrypt(stored, ring=ring, **CTX) == "hunter2-secret"
    assert encryption.kid_of(encryption.encrypt("x", ring=ring, **CTX)) == "new"


def test_it_accepts_openssl_standard_base64_keys():
    standard = base64.b64encode(bytes(range(200, 232))).decode()
    assert "+" in standard or "/" in standard
    assert len(parse_key_ring(f"ops:{standard}").keys["ops"]) == 32


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not set"),
        ("   ", "not set"),
        ("justakey", "keyid:base64key"),
        ("k1:", "keyid:base64key"),
        ("k1:not base64!!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes"),
        (",".join(["k1:" + base64.b64encode(bytes(32)).decode()] * 2),
         "appears twice"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "letters, digits"),
    ],
)
def test_it_explains_a_malformed_key_ring(value, message):
    with pytest.raises(KeyRingError, match=message) as info:
        parse_key_ring(value)
    # The error names the problem, never the key material.
    assert base64.b64encode(bytes(32)).decode() not in str(info.value)


def test_it_keeps_key_material_out_of_the_rings_repr():
    entry = _key("k1")
    assert entry.split(":")[1] not in repr(parse_key_ring(entry))


def test_generated_keys_are_valid_ring_entries():
    ring = parse_key_ring(encryption.generate_key("fresh"))
    assert ring.primary == "fresh" and len(ring.keys["fresh"]) == 32


@pytest.mark.django_db
def test_it_binds_profile_secrets_to_their_row_and_field(profile):
    other = EnvironmentProfile.objects.create(
        name="Staging", base_url="https://app.coalescesoftware.io", environment_id="43")
    other.api_token_ct = profile.api_token_ct  # copied to another row
    other.snowflake_password_ct = profile.api_token_ct  # and to another field
    assert profile.get_secret("api_token") == "tok-production-0123456789"
    with pytest.raises(CredentialDecryptionError):
        other.get_secret("api_token")
    with pytest.raises(CredentialDecryptionError):
        other.get_secret("snowflake_password")


@pytest.mark.django_db
def test_the_database_holds_no_plaintext(profile):
    stored = EnvironmentProfile.objects.values_list("api_token_ct", flat=True).get()
    assert stored.startswith("v1:test1:")
    assert "tok-production" not in stored
