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

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterable, Iterator

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


@contextlib.contextmanager
def secrets_in_use(*values: str | None) -> Iterator[None]:
    """Scrub these exact values from everything logged inside the block."""
    usable = tuple(v for v in values if v and len(v) >= 4)
    token = _secrets_in_use.set(_secrets_in_use.get() + usable)
    try:
        yield
    finally:
        _secrets_in_use.reset(token)


def scrub(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return `text` with every recognisable secret replaced by MARKER."""
    if not text:
        return text
    for value in (*_secrets_in_use.get(), *extra_secrets):
        if value:
            text = text.replace(value, MARKER)
            # A PEM echoed inside JSON arrives with escaped newlines.
            if "\n" in value:
                text = text.replace(value.replace("\n", "\\n"), MARKER)
    text = _PEM.sub(MARKER, text)
    text = _BEARER.sub(f"Bearer {MARKER}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{MARKER}", text)


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
