"""Keeping secrets out of logs, error reports and stored error text.

Three layers, because no single one is enough:
- pattern scrubbing: PEM blocks (also with escaped newlines), bearer tokens, and the values
  of known credential keys in JSON or Python reprs;
- exact-value scrubbing: while a Coalesce call runs, the decrypted secrets it uses are
  registered here (`secrets_in_use`), so an echo of one in any log line is removed even
  when it matches no pattern;
- Django's exception reporter, extended to hide our own variable names.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import logging
import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

from django.views.debug import SafeExceptionReporterFilter

MARKER = "[redacted]"

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|ENCRYPTED PRIVATE KEY)-----"
    r".*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
# "snowflakePassword": "...", 'snowflakeKeyPairKey': '...', Authorization: ..., token=...
_KEY_VALUE = re.compile(
    r"""(?ix)
    (["']?(?:snowflakePassword|snowflakeKeyPairKey|snowflakeKeyPairPass|authorization
        |api_token|password|passphrase|private_key|token)["']?\s*[:=]\s*)
    (?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,}&]+)
    """
)

_secrets_in_use: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "secrets_in_use", default=()
)
_pattern_in_use: contextvars.ContextVar[re.Pattern[str] | None] = contextvars.ContextVar(
    "pattern_in_use", default=None
)


@contextlib.contextmanager
def secrets_in_use(*values: str | None) -> Iterator[None]:
    """Scrub these exact values from everything logged inside the block."""
    usable = tuple(v for v in values if v and len(v) >= 4)
    token = _secrets_in_use.set(_secrets_in_use.get() + usable)
    # Built once per block, not per scrubbed text (a results page scrubs hundreds), and
    # not cached beyond it: the decrypted values should not outlive the call.
    pattern = _pattern_in_use.set(_variants_pattern(_secrets_in_use.get()))
    try:
        yield
    finally:
        _pattern_in_use.reset(pattern)
        _secrets_in_use.reset(token)


def scrub(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return `text` with every recognisable secret replaced by MARKER.

    Each secret in use (and each of `extra_secrets`) is also removed in the forms an echo
    takes on its way back: JSON-escaped, URL-encoded, base64, in any letter case, with
    its last characters cut, and, for a PEM, line by line.
    """
    if not text:
        return text
    in_use = _pattern_in_use.get()
    if in_use is not None:
        text = in_use.sub(MARKER, text)
    extra = tuple(v for v in extra_secrets if v)
    if extra and (pattern := _variants_pattern(extra)) is not None:
        text = pattern.sub(MARKER, text)
    text = _PEM.sub(MARKER, text)
    text = _BEARER.sub(f"Bearer {MARKER}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{MARKER}", text)


# Shorter fragments (a cut-off secret, a PEM's last body line) are too likely to be
# ordinary words to be removed on sight.
_MIN_FRAGMENT = 8


def _variants_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    variants: set[str] = set()
    for value in secrets:
        variants |= _variants(value)
    # Longest first, so a whole secret goes before any fragment of it.
    ordered = sorted((v for v in variants if v), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def _variants(value: str) -> set[str]:
    """The encodings of `value` that Coalesce or Snowflake may echo."""
    bases = {value, value.replace("\n", "\\n")}
    if len(value) > _MIN_FRAGMENT + 1:
        bases |= {value[:-1], value[:-2]}  # an echo cut short by a length limit
    if "-----BEGIN" in value:
        bases |= {line.strip() for line in value.splitlines()
                  if len(line.strip()) >= _MIN_FRAGMENT and not line.startswith("-----")}
    found = set()
    for base in bases:
        raw = base.encode()
        encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
        found |= {base, quote(base, safe=""), quote(base), quote_plus(base),
                  *encoded, *(e.rstrip("=") for e in encoded)}
    return {v for v in found if len(v) >= 4}


class ScrubSecretsFilter(logging.Filter):
    """Logging filter that scrubs the formatted message, arguments and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
            # The formatter would otherwise render the traceback again, unscrubbed.
            record.exc_info = None
        return True


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Also hide our own names for secrets on error pages and in error e-mails."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|PRIVATE|PASSPHRASE", flags=re.I
    )

    def is_active(self, request) -> bool:
        # Django's filter steps aside under DEBUG, so the technical 500 page would show
        # @sensitive_variables locals (decrypted credentials) on a developer's screen, in a
        # screenshot or in an error tracker. Our secrets stay hidden in DEBUG too.
        return True
