"""runs.keys: validating and normalising a pasted Snowflake private key.

Keys are generated here, never read from fixtures on disk. A failing test never
prints key material: PYTEST_DONT_REWRITE keeps pytest from showing the values in a failed
assert, and only error messages (which never contain key material) are shown on purpose.
OpenSSL CLI checks are skipped where the CLI is missing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from runs import private_keys as keys
from tests.factories import pem_of, slices

PASSPHRASE = "test-only passphrase 42"
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

# DER encodings of the OIDs in an EncryptedPrivateKeyInfo we look for.
PBES2_OID = bytes.fromhex("06092a864886f70d01050d")
AES_256_CBC_OID = bytes.fromhex("060960864801650304012a")
AES_256_OFB_OID = bytes.fromhex("060960864801650304012b")


@pytest.fixture
def key(rsa_key) -> rsa.RSAPrivateKey:
    return rsa_key


# --- helpers: key forms -------------------------------------------------------------------


def pkcs1(private_key, passphrase: str | None = None) -> str:
    return pem_of(private_key, passphrase, fmt=serialization.PrivateFormat.TraditionalOpenSSL)


def public_pem(private_key, fmt=serialization.PublicFormat.SubjectPublicKeyInfo) -> str:
    ssh = fmt is serialization.PublicFormat.OpenSSH
    encoding = serialization.Encoding.OpenSSH if ssh else serialization.Encoding.PEM
    return private_key.public_key().public_bytes(encoding, fmt).decode()


def der_of(pem: str) -> bytes:
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


def wrap_encrypted(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}-----END ENCRYPTED PRIVATE KEY-----\n"


def independent_fingerprint(private_key) -> str:
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def is_same_key(pem: str, passphrase: str | None, private_key) -> bool:
    password = passphrase.encode() if passphrase else None
    loaded = serialization.load_pem_private_key(pem.encode(), password)
    return loaded.private_numbers() == private_key.private_numbers()


def canonical_problems(pem: str) -> list[str]:
    """Why `pem` isn't canonical, as descriptions that never quote the key."""
    problems = []
    if not pem.endswith("\n") or pem.endswith("\n\n"):
        problems.append("must end with exactly one newline")
    if "\r" in pem:
        problems.append("CR characters")
    lines = pem[:-1].split("\n")
    if len(re.findall("-----BEGIN ", pem)) != 1 or not lines[0].startswith("-----BEGIN "):
        problems.append("not one block starting with BEGIN")
    if not lines[-1].startswith("-----END "):
        problems.append("last line isn't END")
    body = lines[1:-1]
    if any(len(line) != 64 for line in body[:-1]) or not 0 < len(body[-1]) <= 64:
        problems.append("body not wrapped at 64 columns")
    return problems


def rejection(text: str, passphrase: str | None = None) -> str:
    """The error message for `text`, after checking it leaks nothing that was pasted."""
    with pytest.raises(keys.PrivateKeyError) as info:
        keys.normalise_private_key(text, passphrase)
    message = str(info.value)
    assert not leaks(text, message), "the message contains part of the pasted key"
    if passphrase and len(passphrase.strip()) >= 4:
        assert passphrase.strip() not in message, "the message contains the passphrase"
    return message


def assert_says(message: str, expected: str, *, exact: bool = False) -> None:
    ok = message == expected if exact else expected in message
    assert ok, f"expected {expected!r}, got {message!r}"


def leaks(text: str, message: str) -> bool:
    """Whether any 16-character slice of the pasted body (markers removed) is in `message`."""
    body = re.sub(r"\s+", "", re.sub(r"-{4,} ?(BEGIN|END) [A-Z0-9 ]+?-{4,}", "", text))
    squeezed = re.sub(r"\s+", "", message)
    return any(piece in squeezed for piece in slices(body, 16))


def normalised(text: str, passphrase: str | None = None) -> keys.NormalisedKey:
    result = keys.normalise_private_key(text, passphrase)
    assert not canonical_problems(result.pem), canonical_problems(result.pem)
    return result


# --- helpers: the openssl CLI -------------------------------------------------------------


def openssl(*args: str, stdin: bytes = b"", passphrase: str | None = None):
    """Run the openssl CLI; the passphrase goes through the environment, never argv."""
    env = {**os.environ, "KEY_PASSPHRASE": passphrase or ""}
    return subprocess.run(
        [OPENSSL, *args], input=stdin, capture_output=True, env=env, timeout=60, check=False
    )


def passin(passphrase: str | None) -> list[str]:
    return ["-passin", "env:KEY_PASSPHRASE"] if passphrase else []


def openssl_accepts(pem: str, passphrase: str | None = None) -> bool:
    """OpenSSL 3 is as strict as Node, our stand-in for Coalesce's parser."""
    done = openssl("pkey", "-noout", *passin(passphrase), stdin=pem.encode(), passphrase=passphrase)
    return done.returncode == 0


def openssl_fingerprint(pem: str, passphrase: str | None = None) -> str:
    """Snowflake's documented pipeline: rsa -pubin -outform DER | dgst -sha256 | base64."""
    public = openssl(
        "pkey", "-pubout", *passin(passphrase), stdin=pem.encode(), passphrase=passphrase
    ).stdout
    der = openssl("rsa", "-pubin", "-outform", "DER", stdin=public).stdout
    digest = openssl("dgst", "-sha256", "-binary", stdin=der).stdout
    return "SHA256:" + openssl("enc", "-base64", "-A", stdin=digest).stdout.decode().strip()


def snowflake_recipe_key(*pkcs8_args: str, passphrase: str | None = None) -> str:
    """`openssl genrsa 2048 | openssl pkcs8 -topk8 -inform PEM ...`, as in Snowflake's docs."""
    generated = openssl("genrsa", "2048").stdout
    done = openssl(
        "pkcs8", "-topk8", "-inform", "PEM", *pkcs8_args, stdin=generated, passphrase=passphrase
    )
    assert done.returncode == 0
    return done.stdout.decode()


def legacy_openssl_pkcs8(key, algorithm: str) -> str:
    """A PKCS#8 key under a PBES1 algorithm, which needs OpenSSL's legacy provider."""
    done = openssl(
        "pkcs8",
        "-topk8",
        "-v1",
        algorithm,
        "-passout",
        "env:KEY_PASSPHRASE",
        "-provider",
        "legacy",
        "-provider",
        "default",
        stdin=pem_of(key).encode(),
        passphrase=PASSPHRASE,
    )
    if done.returncode != 0:
        pytest.skip("OpenSSL's legacy provider is not available")
    return done.stdout.decode()


# --- the happy path and the result object -------------------------------------------------


def test_it_accepts_canonical_pkcs8_unchanged(key):
    text = pem_of(key)
    result = normalised(text)
    assert result.pem == text
    assert not result.encrypted
    assert not result.reencrypted
    assert result.key_size == 2048


def test_it_describes_the_key_without_showing_it(key):
    result = normalised(pem_of(key))
    assert result.description == "RSA 2048"
    assert repr(result) == f"<NormalisedKey RSA 2048 {result.fingerprint}>"
    assert not leaks(pem_of(key), repr(result))


def test_it_computes_snowflakes_fingerprint(key):
    result = normalised(pem_of(key))
    assert result.fingerprint == independent_fingerprint(key)
    assert keys.fingerprint_of(key) == independent_fingerprint(key)


def test_it_gives_every_form_of_a_key_the_same_fingerprint(key):
    forms = [
        (pem_of(key), None),
        (pkcs1(key), None),
        (pem_of(key, passphrase=PASSPHRASE), PASSPHRASE),
        (pkcs1(key, PASSPHRASE), PASSPHRASE),
    ]
    fingerprints = {normalised(text, passphrase).fingerprint for text, passphrase in forms}
    assert fingerprints == {independent_fingerprint(key)}


@needs_openssl
def test_it_matches_the_openssl_fingerprint_pipeline(key):
    result = normalised(pkcs1(key))
    assert result.fingerprint == openssl_fingerprint(result.pem)


# --- normalisation of paste damage --------------------------------------------------------


def assert_recovers(text: str, key, passphrase: str | None = None) -> keys.NormalisedKey:
    result = normalised(text, passphrase)
    assert is_same_key(result.pem, passphrase, key)
    assert result.fingerprint == independent_fingerprint(key)
    return result


# The ways a key gets mangled between the file and the form, each recovered to the same PEM.
REFORMATTED_PASTES = {
    "crlf line endings": lambda pem: pem.replace("\n", "\r\n"),
    "indented lines": lambda pem: "\n".join("    " + line for line in pem.splitlines()),
    "literal backslash n": lambda pem: pem.replace("\n", "\\n"),
    "literal backslash r backslash n": lambda pem: pem.replace("\n", "\\r\\n"),
    # What an <input> does to a pasted key: newlines become spaces.
    "a one-line paste with spaces": lambda pem: pem.replace("\n", " "),
    "everything on one line without separators": lambda pem: pem.replace("\n", ""),
    "leading spaces before begin": lambda pem: "   " + pem,
}


@pytest.mark.parametrize("reformat", REFORMATTED_PASTES.values(), ids=REFORMATTED_PASTES)
def test_it_accepts_a_reformatted_paste(key, reformat):
    assert assert_recovers(reformat(pem_of(key)), key).pem == pem_of(key)


@pytest.mark.parametrize("quote", ['"', "'", "“"])
def test_it_accepts_surrounding_and_trailing_quotes(key, quote):
    closing = "”" if quote == "“" else quote
    assert assert_recovers(quote + pem_of(key) + closing + "\n", key).pem == pem_of(key)
    assert assert_recovers(pem_of(key).rstrip() + closing, key).pem == pem_of(key)


def test_it_accepts_non_breaking_spaces(key):
    lines = pem_of(key).replace(" ", "\u00a0").splitlines()
    text = "\n".join("\u00a0\u00a0" + line for line in lines)
    assert assert_recovers(text, key).pem == pem_of(key)


def test_it_ignores_text_around_the_block(key):
    text = "Bag Attributes\n    localKeyID: 01 02\nKey Attributes: <No Attributes>\n" + pem_of(key)
    assert assert_recovers(text, key).pem == pem_of(key)


def test_it_converts_pkcs1_to_pkcs8(key):
    result = assert_recovers(pkcs1(key), key)
    assert result.pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert result.pem == pem_of(key)
    assert not result.encrypted


def test_it_keeps_encrypted_pkcs8_byte_for_byte(key):
    text = pem_of(key, passphrase=PASSPHRASE)
    result = assert_recovers(text.replace("\n", "\r\n    "), key, PASSPHRASE)
    assert der_of(result.pem) == der_of(text)
    assert result.pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert result.encrypted
    assert not result.reencrypted


def test_it_reencrypts_encrypted_pkcs1_with_the_same_passphrase(key):
    text = pkcs1(key, PASSPHRASE)
    assert "DEK-Info: " in text  # the legacy OpenSSL encryption, with headers
    result = assert_recovers(text, key, PASSPHRASE)
    assert result.pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert result.encrypted
    assert result.reencrypted


def test_it_reencrypts_with_an_algorithm_it_would_keep(key):
    # BestAvailableEncryption may change meaning in a later cryptography; this test notices.
    der = der_of(normalised(pkcs1(key, PASSPHRASE), PASSPHRASE).pem)
    assert PBES2_OID in der
    assert AES_256_CBC_OID in der
    assert not normalised(wrap_encrypted(der), PASSPHRASE).reencrypted


@pytest.mark.parametrize("separator", [" ", ""])
def test_it_keeps_legacy_headers_of_a_one_line_encrypted_pkcs1(key, separator):
    text = pkcs1(key, PASSPHRASE).replace("\n", separator)
    assert assert_recovers(text, key, PASSPHRASE).reencrypted


def test_it_accepts_a_passphrase_with_inner_spaces_as_typed(key):
    passphrase = "two  words"
    assert_recovers(pem_of(key, passphrase=passphrase), key, passphrase)


# --- what was pasted ----------------------------------------------------------------------


def test_it_rejects_an_empty_paste():
    assert_says(rejection('  "" \n'), keys.EMPTY, exact=True)


def test_it_rejects_a_public_key_pem(key):
    assert_says(rejection(public_pem(key)), "public key")


def test_it_rejects_an_rsa_public_key_pem(key):
    message = rejection(public_pem(key, serialization.PublicFormat.PKCS1))
    assert_says(message, "public key")
    assert_says(message, "rsa_key.p8")


def test_it_rejects_an_ssh_rsa_public_key(key):
    line = public_pem(key, serialization.PublicFormat.OpenSSH)
    assert line.startswith("ssh-rsa ")
    assert_says(rejection(line + " alice@laptop\n"), "public key")


def test_it_rejects_an_openssh_private_key(key):
    text = pem_of(key, fmt=serialization.PrivateFormat.OpenSSH)
    assert "BEGIN OPENSSH PRIVATE KEY" in text
    message = rejection(text)
    assert_says(message, "OpenSSH")
    assert_says(message, "ssh-keygen -p -m PKCS8 -f <file>")


def test_it_rejects_a_certificate(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert_says(
        rejection(certificate.public_bytes(serialization.Encoding.PEM).decode()), "certificate"
    )


def test_it_rejects_an_ec_private_key():
    text = pkcs1(ec.generate_private_key(ec.SECP256R1()))
    assert "BEGIN EC PRIVATE KEY" in text
    assert_says(rejection(text), "RSA keys only")


def test_it_rejects_an_ec_key_in_pkcs8():
    assert_says(rejection(pem_of(ec.generate_private_key(ec.SECP256R1()))), "RSA keys only")


def test_it_rejects_an_ed25519_key():
    assert_says(rejection(pem_of(ed25519.Ed25519PrivateKey.generate())), "RSA keys only")


def test_it_rejects_an_encrypted_ec_key_once_decrypted():
    text = pem_of(ec.generate_private_key(ec.SECP256R1()), passphrase=PASSPHRASE)
    assert_says(rejection(text, PASSPHRASE), "RSA keys only")


def test_it_rejects_a_1024_bit_key():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    message = rejection(pem_of(small))
    assert_says(message, "1024 bits")
    assert_says(message, "at least 2048")


def test_it_rejects_two_blocks(key):
    assert_says(rejection(pem_of(key) + public_pem(key)), "more than one PEM block")


def test_it_rejects_an_unknown_block():
    text = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF0AAAAAAAAAAAAAAAAA\n"
    assert_says(rejection(text + "-----END PGP PRIVATE KEY BLOCK-----\n"), "isn't a private key")


def test_it_rejects_text_without_begin_line():
    assert_says(rejection("my key is in the vault, ask Bob for it"), "including the -----BEGIN")


def test_it_rejects_a_base64_body_without_markers(key):
    body = "\n".join(pem_of(key).splitlines()[1:-1])
    message = rejection(body)
    assert_says(message, "looks like base64")
    assert_says(message, "BEGIN and -----END lines")


def test_it_rejects_base64_of_the_whole_pem(key):
    # What Airflow's Snowflake provider >= 6.3 expects in its field.
    message = rejection(base64.b64encode(pem_of(key).encode()).decode())
    assert_says(message, "looks like base64")
    assert_says(message, "file's contents")


def test_it_rejects_a_key_cut_off_before_its_end_line(key):
    text = pem_of(key)
    assert_says(rejection(text[: len(text) // 2]), "looks truncated")


def test_it_rejects_a_key_missing_its_begin_line(key):
    assert_says(rejection(pem_of(key).split("\n", 1)[1]), "looks truncated")


def test_it_rejects_a_key_with_lines_missing_in_the_middle(key):
    lines = pem_of(key).splitlines()
    message = rejection("\n".join(lines[:5] + lines[8:]))
    assert_says(message, "truncated or damaged")


def test_it_rejects_a_key_with_a_changed_length(key):
    lines = pem_of(key).splitlines()
    lines[3] = lines[3][:-1]  # one character lost: no longer whole base64 quadruples
    assert_says(rejection("\n".join(lines)), "truncated or damaged")


def test_it_rejects_a_key_with_changed_characters(key):
    lines = pkcs1(key).splitlines()
    # Deep inside an INTEGER: the DER structure survives, the RSA consistency check doesn't.
    lines[10] = lines[10][:20] + ("B" if lines[10][20] == "A" else "A") + lines[10][21:]
    assert_says(rejection("\n".join(lines)), "truncated or damaged")


@pytest.mark.parametrize("junk", ["…", "“", "é"])
def test_it_rejects_characters_that_are_not_base64(key, junk):
    lines = pem_of(key).splitlines()
    lines[4] = lines[4][:30] + junk + lines[4][31:]
    assert_says(rejection("\n".join(lines)), "characters that can't be in a PEM key")


# --- passphrases --------------------------------------------------------------------------


@pytest.mark.parametrize("passphrase", [None, ""])
def test_it_asks_for_the_passphrase_of_an_encrypted_key(key, passphrase):
    message = rejection(pem_of(key, passphrase=PASSPHRASE), passphrase)
    assert_says(message, "This key is encrypted — enter its passphrase.", exact=True)


def test_it_asks_for_the_passphrase_of_an_encrypted_pkcs1_key(key):
    assert_says(rejection(pkcs1(key, PASSPHRASE)), "enter its passphrase")


def test_it_rejects_a_passphrase_for_an_unencrypted_key(key):
    message = rejection(pem_of(key), PASSPHRASE)
    assert_says(message, "This key isn't encrypted — leave the passphrase empty.", exact=True)


def test_it_rejects_a_wrong_passphrase(key):
    message = rejection(pem_of(key, passphrase=PASSPHRASE), "not the passphrase")
    assert_says(message, "The passphrase doesn't decrypt this key.", exact=True)


def test_it_rejects_a_wrong_passphrase_for_encrypted_pkcs1(key):
    message = rejection(pkcs1(key, PASSPHRASE), "not the passphrase")
    assert_says(message, "The passphrase doesn't decrypt this key.", exact=True)


@pytest.mark.parametrize("typed", [PASSPHRASE + "\n", " " + PASSPHRASE])
def test_it_points_out_whitespace_around_the_passphrase(key, typed):
    message = rejection(pem_of(key, passphrase=PASSPHRASE), typed)
    assert_says(message, "The passphrase doesn't decrypt this key.")
    assert_says(message, "whitespace")


def test_it_uses_a_passphrase_with_whitespace_when_that_is_the_real_one(key):
    passphrase = PASSPHRASE + " "
    assert_recovers(pem_of(key, passphrase=passphrase), key, passphrase)


def test_it_rejects_an_unknown_encryption_algorithm(key):
    der = der_of(pem_of(key, passphrase=PASSPHRASE))
    assert AES_256_CBC_OID in der
    text = wrap_encrypted(der.replace(AES_256_CBC_OID, AES_256_OFB_OID))
    message = rejection(text, PASSPHRASE)
    assert_says(message, "Unsupported key format or encryption")
    assert_says(message, "openssl pkcs8 -topk8 -v2 aes-256-cbc")


# --- the openssl CLI: what Coalesce's parser is likely to accept --------------------------


@needs_openssl
def test_it_writes_keys_that_openssl_accepts(key):
    damaged = [
        (pem_of(key).replace("\n", " "), None),
        ("  " + pkcs1(key).replace("\n", "\n  "), None),
        (pkcs1(key, PASSPHRASE).replace("\n", " "), PASSPHRASE),
        (pem_of(key, passphrase=PASSPHRASE).replace("\n", ""), PASSPHRASE),
    ]
    for text, passphrase in damaged:
        assert openssl_accepts(normalised(text, passphrase).pem, passphrase)


@needs_openssl
def test_it_accepts_a_key_made_with_snowflakes_recipe():
    text = snowflake_recipe_key("-nocrypt")
    assert text.startswith("-----BEGIN PRIVATE KEY-----\n")
    result = normalised(text)
    assert der_of(result.pem) == der_of(text)
    assert result.fingerprint == openssl_fingerprint(text)
    assert openssl_accepts(result.pem)


@needs_openssl
def test_it_keeps_a_des3_key_made_with_snowflakes_recipe():
    text = snowflake_recipe_key(
        "-v2", "des3", "-passout", "env:KEY_PASSPHRASE", passphrase=PASSPHRASE
    )
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    result = normalised(text, PASSPHRASE)
    assert not result.reencrypted
    assert der_of(result.pem) == der_of(text)
    assert result.fingerprint == openssl_fingerprint(text, PASSPHRASE)


@needs_openssl
def test_it_reencrypts_a_legacy_pbes1_key_so_openssl_3_reads_it(key):
    text = legacy_openssl_pkcs8(key, "PBE-MD5-DES")
    result = assert_recovers(text, key, PASSPHRASE)
    assert result.reencrypted
    assert openssl_accepts(result.pem, PASSPHRASE)


@needs_openssl
def test_it_reencrypts_aes_192_which_is_not_on_the_allow_list(key):
    done = openssl(
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-192-cbc",
        "-passout",
        "env:KEY_PASSPHRASE",
        stdin=pem_of(key).encode(),
        passphrase=PASSPHRASE,
    )
    assert done.returncode == 0
    assert assert_recovers(done.stdout.decode(), key, PASSPHRASE).reencrypted


@needs_openssl
def test_it_rejects_a_wrong_passphrase_for_an_rc4_key(key):
    # A stream cipher has no padding to check, so cryptography doesn't say "Incorrect password".
    text = legacy_openssl_pkcs8(key, "PBE-SHA1-RC4-128")
    assert_says(
        rejection(text, "not the passphrase"),
        "The passphrase doesn't decrypt this key.",
        exact=True,
    )
