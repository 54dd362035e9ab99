"""Validating and normalising the Snowflake private key an admin pastes into the form.

Python's `cryptography` accepts much more damage than OpenSSL 3 or Node (and so, probably,
Coalesce): a key that it loads can still be rejected downstream. So a key is not only checked
but rebuilt into one canonical PEM, in this order:

1. pre-clean the pasted text (quotes, escaped newlines, CRLF, NBSP, indentation);
2. identify what was pasted, with a specific message for each wrong thing;
3. rebuild the PEM from the BEGIN/END markers and the base64 body between them;
4. load it with the passphrase exactly as typed;
5. require RSA, at least 2048 bits;
6. keep encrypted PKCS#8 as it is when its algorithm is on the allow-list, otherwise
   re-encrypt it; write unencrypted keys as PKCS#8.

Every error is a PrivateKeyError whose message is a fixed sentence: it never contains the
pasted text, the passphrase, or raw exception text from cryptography/OpenSSL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import string
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MIN_KEY_SIZE = 2048
PASSPHRASE_FIELD = "private_key_passphrase"

_REEXPORT = "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.p8 -out new.p8"
_RECIPE = "Snowflake's openssl recipe"

EMPTY = "Paste the private key."
PUBLIC_KEY = "This is the public key. Paste the private key instead (the rsa_key.p8 file)."
OPENSSH_KEY = (
    "OpenSSH private keys aren't supported. Convert the key to PKCS#8 with "
    f"`ssh-keygen -p -m PKCS8 -f <file>`, or generate a new key with {_RECIPE}."
)
CERTIFICATE = "This is a certificate, not a private key. Paste the private key (rsa_key.p8)."
NOT_RSA = f"Snowflake accepts RSA keys only. Generate an RSA key with {_RECIPE}."
MULTIPLE_BLOCKS = (
    "The text contains more than one PEM block. Paste only the private key, "
    "from its -----BEGIN line to its -----END line."
)
UNKNOWN_BLOCK = (
    "This isn't a private key. Paste the private key (rsa_key.p8); its first line is "
    "-----BEGIN PRIVATE KEY or -----BEGIN ENCRYPTED PRIVATE KEY."
)
BASE64_OF_PEM = (
    "This looks like base64-encoded text. Paste the key file's contents as they are, "
    "including the -----BEGIN and -----END lines."
)
BASE64_BODY = (
    "This looks like base64 without the -----BEGIN and -----END lines. "
    "Paste the file contents, including the -----BEGIN and -----END lines."
)
NO_BEGIN = "Paste the whole key, including the -----BEGIN ... ----- and -----END ... ----- lines."
TRUNCATED = (
    "The key looks truncated: its -----BEGIN or -----END line is missing. "
    "Copy the whole file again."
)
BAD_CHARACTERS = (
    "The key contains characters that can't be in a PEM key (for example smart quotes, "
    "'…' or accented letters). Copy it again straight from the key file."
)
DAMAGED = (
    "The key looks truncated or damaged: part of it is missing or changed. "
    "Copy the whole file again."
)
NEEDS_PASSPHRASE = "This key is encrypted — enter its passphrase."
NO_PASSPHRASE_NEEDED = "This key isn't encrypted — leave the passphrase empty."
WRONG_PASSPHRASE = "The passphrase doesn't decrypt this key."
PASSPHRASE_WHITESPACE = (
    " Your passphrase has leading or trailing whitespace (a space or line break); remove it."
)
UNSUPPORTED = (
    "Unsupported key format or encryption. Re-export the key with "
    f"`{_REEXPORT}` and paste the new file."
)
TOO_SMALL = (
    "This RSA key has {bits} bits; Snowflake needs at least 2048. "
    f"Generate a new key with {_RECIPE}."
)


class PrivateKeyError(ValueError):
    """A plain, specific message for the admin form, and the form field it is about
    (`private_key`, or `private_key_passphrase` when the passphrase is the problem).

    NEVER contains any of the pasted text, nor raw exception text from cryptography/OpenSSL.
    """

    def __init__(self, message: str, *, field: str = "private_key") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, repr=False)
class NormalisedKey:
    """A validated RSA private key in the canonical form we store and send to Coalesce.

    `pem` is canonical: LF line endings, base64 wrapped at 64 columns, a trailing newline;
    unencrypted keys are PKCS#8 `BEGIN PRIVATE KEY`, encrypted ones PKCS#8
    `BEGIN ENCRYPTED PRIVATE KEY` with an algorithm OpenSSL 3 and Node read.
    """

    pem: str = field(repr=False)
    encrypted: bool
    key_size: int
    fingerprint: str
    reencrypted: bool
    # The public half as Snowflake's RSA_PUBLIC_KEY takes it: base64 of the SPKI DER.
    public_key: str = ""

    def __repr__(self) -> str:
        return f"<NormalisedKey {self.description} {self.fingerprint}>"

    @property
    def description(self) -> str:
        return f"RSA {self.key_size}"


def fingerprint_of(private_key: rsa.RSAPrivateKey) -> str:
    """Snowflake's RSA_PUBLIC_KEY_FP: "SHA256:" + base64 of sha256 over the SPKI DER.

    Hashing the PKCS#1 public key instead gives a plausible but wrong value.
    """
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def public_key_of(private_key: rsa.RSAPrivateKey) -> str:
    """The value of Snowflake's `ALTER USER … SET RSA_PUBLIC_KEY='…'`: base64 SPKI DER."""
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(spki).decode("ascii")


def normalise_private_key(text: str, passphrase: str | None = None) -> NormalisedKey:
    """Validate a pasted private key and return its canonical form.

    `passphrase` is used exactly as given (never stripped); "" means none.
    Raises PrivateKeyError with a message fit to show next to the form field.
    """
    block = _find_block(_pre_clean(text))
    password = passphrase.encode("utf-8") if passphrase else None
    key = _load(block, password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PrivateKeyError(NOT_RSA)
    if key.key_size < MIN_KEY_SIZE:
        raise PrivateKeyError(TOO_SMALL.format(bits=key.key_size))
    pem, reencrypted = _canonical_pem(block, key, password)
    return NormalisedKey(
        pem=pem,
        encrypted=block.encrypted,
        key_size=key.key_size,
        fingerprint=fingerprint_of(key),
        reencrypted=reencrypted,
        public_key=public_key_of(key),
    )


# --- 1. Pre-cleaning ---------------------------------------------------------------------

_QUOTES = "\"'“”‘’`"
_SPACES = re.compile("[\u00a0\u2007\u202f\t]")  # NBSP and friends, from web pages and chat
_INVISIBLE = re.compile("[\u200b\u200c\u200d\ufeff]")  # zero-width characters and BOMs


def _pre_clean(text: str) -> str:
    """Undo the usual copy-and-paste damage that doesn't change the key itself."""
    text = _INVISIBLE.sub("", _SPACES.sub(" ", text)).strip(string.whitespace + _QUOTES)
    # A key flattened into an env var or JSON string: "-----BEGIN...-----\nMIIE...".
    if "\n" not in text and "\r" not in text and ("\\n" in text or "\\r" in text):
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n").strip()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.strip() for line in text.split("\n"))


# --- 2. Identifying what was pasted and rebuilding the PEM --------------------------------

# Tolerant on purpose: a one-line paste has no newline around the markers, and RFC 4716
# public keys use "---- BEGIN SSH2 PUBLIC KEY ----".
_BEGIN = re.compile(r"-{4,} ?BEGIN ([A-Z0-9][A-Z0-9 ]*?) ?-{4,}")
_END = re.compile(r"-{4,} ?END ([A-Z0-9][A-Z0-9 ]*?) ?-{4,}")
_SSH_PUBLIC_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")
_PRIVATE_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY")
_LEGACY_HEADERS = re.compile(
    r"Proc-Type: *4,ENCRYPTED\s*DEK-Info: *([A-Za-z0-9-]+) *, *([0-9A-Fa-f]+)"
)
# IV length (hex digits) per DEK-Info cipher, so that an IV glued to the body on a
# one-line paste can be split off it.
_IV_HEX_DIGITS = {
    "AES-128-CBC": 32,
    "AES-192-CBC": 32,
    "AES-256-CBC": 32,
    "DES-EDE3-CBC": 16,
    "DES-CBC": 16,
}
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True)
class _Block:
    """One private key PEM block, rebuilt: label, legacy DEK-Info header (if any), DER."""

    label: str
    der: bytes
    dek_info: tuple[str, str] | None = None

    @property
    def encrypted(self) -> bool:
        return self.label == "ENCRYPTED PRIVATE KEY" or self.dek_info is not None

    def pem(self) -> bytes:
        headers = ""
        if self.dek_info:
            headers = "Proc-Type: 4,ENCRYPTED\nDEK-Info: {},{}\n\n".format(*self.dek_info)
        return _wrap(self.label, self.der, headers).encode("ascii")


def _find_block(text: str) -> _Block:
    """Return the one private key block in `text`, or raise a message saying what it is."""
    if not text:
        raise PrivateKeyError(EMPTY)
    if text.startswith(_SSH_PUBLIC_PREFIXES):
        raise PrivateKeyError(PUBLIC_KEY)
    begins = list(_BEGIN.finditer(text))
    if len(begins) > 1:
        raise PrivateKeyError(MULTIPLE_BLOCKS)
    if not begins:
        raise PrivateKeyError(TRUNCATED if _END.search(text) else _guess_headerless(text))
    label = begins[0].group(1)
    _check_label(label)
    end = next((m for m in _END.finditer(text, begins[0].end()) if m.group(1) == label), None)
    if end is None:
        raise PrivateKeyError(TRUNCATED)
    return _rebuild(label, text[begins[0].end() : end.start()])


def _check_label(label: str) -> None:
    if label.endswith("PUBLIC KEY"):
        raise PrivateKeyError(PUBLIC_KEY)
    if label == "OPENSSH PRIVATE KEY":
        raise PrivateKeyError(OPENSSH_KEY)
    if "CERTIFICATE" in label:
        raise PrivateKeyError(CERTIFICATE)
    if label in ("EC PRIVATE KEY", "DSA PRIVATE KEY"):
        raise PrivateKeyError(NOT_RSA)
    if label not in _PRIVATE_LABELS:
        raise PrivateKeyError(UNKNOWN_BLOCK)


def _guess_headerless(text: str) -> str:
    """The message for text without a BEGIN line: is it base64 of a PEM, of a DER, or junk?"""
    compact = re.sub(r"\s+", "", text)
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except binascii.Error:
        return NO_BEGIN
    if decoded.lstrip().startswith(b"-----BEGIN"):
        return BASE64_OF_PEM
    return BASE64_BODY if _is_der(decoded) else NO_BEGIN


def _rebuild(label: str, inner: str) -> _Block:
    """Decode the text between the markers, keeping a legacy DEK-Info header."""
    dek_info = None
    if label == "RSA PRIVATE KEY" and "Proc-Type" in inner:
        dek_info, inner = _split_legacy_headers(inner)
    der = _decode_body(inner)
    # Legacy-encrypted PKCS#1 is ciphertext, not DER: only its block length can be checked.
    intact = len(der) % 8 == 0 if dek_info else _is_der(der)
    if not intact:
        raise PrivateKeyError(DAMAGED)
    return _Block(label, der, dek_info)


def _split_legacy_headers(inner: str) -> tuple[tuple[str, str], str]:
    match = _LEGACY_HEADERS.search(inner)
    if match is None:
        raise PrivateKeyError(DAMAGED)
    cipher, hex_run = match.group(1).upper(), match.group(2)
    digits = _IV_HEX_DIGITS.get(cipher, len(hex_run))
    return (cipher, hex_run[:digits].upper()), hex_run[digits:] + inner[match.end() :]


def _decode_body(inner: str) -> bytes:
    body = re.sub(r"\s+", "", inner)
    if not _BASE64.fullmatch(body):
        raise PrivateKeyError(BAD_CHARACTERS)
    if not body or len(body) % 4:
        raise PrivateKeyError(DAMAGED)
    return base64.b64decode(body, validate=True)


def _wrap(label: str, der: bytes, headers: str = "") -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n{headers}" + "\n".join(lines) + f"\n-----END {label}-----\n"


# --- 3. Loading ---------------------------------------------------------------------------

# What this cryptography release can decrypt. Only consulted when decryption fails with
# something other than "Incorrect password": a wrong passphrase can slip through a CBC
# padding check (about 1 in 200) or a stream cipher (always, RC4), then fail to parse.
_DECRYPTABLE_DEK_INFO = {"AES-128-CBC", "AES-256-CBC", "DES-EDE3-CBC"}


def _load(block: _Block, password: bytes | None) -> PrivateKeyTypes:
    """Load the key with cryptography, mapping every failure to a plain message."""
    if block.encrypted and password is None:
        raise PrivateKeyError(NEEDS_PASSPHRASE, field=PASSPHRASE_FIELD)
    if not block.encrypted and password is not None:
        raise PrivateKeyError(NO_PASSPHRASE_NEEDED, field=PASSPHRASE_FIELD)
    try:
        return serialization.load_pem_private_key(block.pem(), password)
    except UnsupportedAlgorithm:
        raise PrivateKeyError(UNSUPPORTED) from None
    except TypeError:  # the encrypted/unencrypted checks above disagree with cryptography
        raise PrivateKeyError(UNSUPPORTED) from None
    except ValueError as exc:
        message = _load_failure(block, password, str(exc))
        field = PASSPHRASE_FIELD if message.startswith(WRONG_PASSPHRASE) else "private_key"
        raise PrivateKeyError(message, field=field) from None


def _load_failure(block: _Block, password: bytes | None, reason: str) -> str:
    if not block.encrypted:
        # Well-formed DER that doesn't load: changed characters, or not RSA at all (an EC key
        # with explicit curve parameters, say, or an algorithm cryptography doesn't know).
        return DAMAGED if _is_rsa(block) else NOT_RSA
    if "Incorrect password" not in reason and not _is_decryptable(block):
        return UNSUPPORTED
    stripped = password.decode("utf-8").strip().encode("utf-8") if password else b""
    if stripped and stripped != password and _decrypts(block, stripped):
        return WRONG_PASSPHRASE + PASSPHRASE_WHITESPACE
    return WRONG_PASSPHRASE


def _decrypts(block: _Block, password: bytes) -> bool:
    try:
        serialization.load_pem_private_key(block.pem(), password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _is_rsa(block: _Block) -> bool:
    if block.label == "RSA PRIVATE KEY":
        return True
    try:
        return _algorithm(block.der, 1)[0] in _RSA_ALGORITHMS
    except (ValueError, IndexError):  # _DerError is a ValueError
        return False


def _is_decryptable(block: _Block) -> bool:
    if block.dek_info:
        return block.dek_info[0] in _DECRYPTABLE_DEK_INFO
    scheme = _encryption_scheme(block.der)
    if scheme[0] == _PBES2:
        return scheme[2] in _PBES2_CIPHERS_DECRYPTABLE
    return scheme[0] in _PBES1_DECRYPTABLE


# --- 4. The stored form -------------------------------------------------------------------


def _canonical_pem(
    block: _Block, key: rsa.RSAPrivateKey, password: bytes | None
) -> tuple[str, bool]:
    """Return (canonical PEM, whether it had to be re-encrypted)."""
    if password is None:
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _wrap("PRIVATE KEY", der), False
    if block.label == "ENCRYPTED PRIVATE KEY" and _is_allowed(_encryption_scheme(block.der)):
        return _wrap(block.label, block.der), False
    # Encrypted PKCS#1 and legacy algorithms (PBES1, RC4, ...) that OpenSSL 3 and Node
    # refuse: store a copy under the same passphrase with a current algorithm.
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    return _wrap("ENCRYPTED PRIVATE KEY", der), True


# --- 5. A small DER reader, for EncryptedPrivateKeyInfo's AlgorithmIdentifier -------------

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_DES_EDE3_CBC = "1.2.840.113549.3.7"
_AES_128_CBC = "2.16.840.1.101.3.4.1.2"
_AES_192_CBC = "2.16.840.1.101.3.4.1.22"
_AES_256_CBC = "2.16.840.1.101.3.4.1.42"
_PKCS12_3DES = "1.2.840.113549.1.12.1.3"
_RSA_ALGORITHMS = {"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10"}  # rsaEncryption, RSASSA-PSS
_PBES2_CIPHERS_ALLOWED = {_DES_EDE3_CBC, _AES_128_CBC, _AES_256_CBC}
_PBES2_CIPHERS_DECRYPTABLE = _PBES2_CIPHERS_ALLOWED | {_AES_192_CBC}
_PBES1_DECRYPTABLE = {
    "1.2.840.113549.1.5.3",  # pbeWithMD5AndDES-CBC
    "1.2.840.113549.1.12.1.1",  # pbeWithSHAAnd128BitRC4
    _PKCS12_3DES,
    "1.2.840.113549.1.12.1.6",  # pbeWithSHAAnd40BitRC2-CBC
}


_MAX_DEPTH = 16


class _DerError(ValueError):
    """Malformed or truncated DER. Internal: always mapped to a fixed message."""


def _is_allowed(scheme: tuple[str, ...]) -> bool:
    """Whether OpenSSL 3, Node and the Snowflake drivers all read this algorithm.

    PBES2 must also use PBKDF2: scrypt is readable by OpenSSL but not by every driver.
    """
    if scheme[0] == _PBES2:
        return scheme[1] == _PBKDF2 and scheme[2] in _PBES2_CIPHERS_ALLOWED
    return scheme[0] == _PKCS12_3DES


def _encryption_scheme(der: bytes) -> tuple[str, ...]:
    """Return (algorithm OID,) or, for PBES2, (PBES2 OID, KDF OID, cipher OID).

    ("",) when the structure can't be read, which no allow-list contains.
    """
    try:
        oid, params = _algorithm(der, 0)
        if oid != _PBES2:
            return (oid,)
        kdf, cipher = _children(der, *params[0][1:])
        return (oid, *(_oid(der, _children(der, *part[1:])[0]) for part in (kdf, cipher)))
    except (ValueError, IndexError):  # _DerError is a ValueError
        return ("",)


def _algorithm(der: bytes, index: int) -> tuple[str, list[tuple[int, int, int]]]:
    """The OID and parameters of the AlgorithmIdentifier at `index` in the outer SEQUENCE.

    Index 0 in an EncryptedPrivateKeyInfo, 1 in a PrivateKeyInfo (after the version).
    """
    (outer,) = _children(der, 0, len(der))
    algorithm = _children(der, *outer[1:])[index]
    oid, *params = _children(der, *algorithm[1:])
    return _oid(der, oid), params


def _is_der(data: bytes) -> bool:
    """Whether `data` is exactly one well-formed DER SEQUENCE (nested lengths included)."""
    try:
        (element,) = _children(data, 0, len(data))
        _walk(data, element)
    except ValueError:  # includes _DerError
        return False
    return element[0] == 0x30


def _walk(data: bytes, element: tuple[int, int, int], depth: int = 0) -> None:
    tag, start, end = element
    if depth > _MAX_DEPTH:  # keys nest < 8 deep; junk must not exhaust the stack
        raise _DerError
    if tag & 0x20:  # constructed: its contents must be whole elements too
        for child in _children(data, start, end):
            _walk(data, child, depth + 1)


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The (tag, value start, value end) of each element in data[start:end]."""
    elements = []
    while start < end:
        element = _read_element(data, start, end)
        elements.append(element)
        start = element[2]
    return elements


def _read_element(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    if pos + 2 > limit or data[pos] & 0x1F == 0x1F:  # truncated, or a multi-byte tag
        raise _DerError
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > limit:  # indefinite length isn't DER
            raise _DerError
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > limit:
        raise _DerError
    return tag, pos, pos + length


def _oid(data: bytes, element: tuple[int, int, int]) -> str:
    tag, start, end = element
    if tag != 0x06 or start == end:
        raise _DerError
    arcs, value = [], 0
    for byte in data[start:end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))
