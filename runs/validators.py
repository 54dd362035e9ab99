"""Validation of what admins type into a profile: the Coalesce base URL and Snowflake names.

The base URL check is a security boundary, not a convenience: the server sends the API
token and Snowflake credentials to whatever host a profile names, so only the official
regional hosts, hosts an operator listed in COALESCE_ALLOWED_HOSTS, and (for the local
simulator and tests only) plain-http loopback are accepted.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# Coalesce's regional deployments, PrivateLink and Azure (docs/coalesce-api.md §2.1).
OFFICIAL_BASE_URLS = [
    ("https://app.coalescesoftware.io", "US primary (us-central1)"),
    ("https://app.australia-southeast1.gcp.coalescesoftware.io", "Australia (Sydney)"),
    ("https://app.northamerica-northeast1.gcp.coalescesoftware.io", "Canada (Montreal)"),
    ("https://app.eu-west-2.aws.coalescesoftware.io", "UK (London, AWS)"),
    ("https://app.eu.coalescesoftware.io", "Europe primary (Frankfurt)"),
    ("https://app.europe-west1.gcp.coalescesoftware.io", "Europe (Belgium)"),
    ("https://app.us-east-1.aws.coalescesoftware.io", "US East (Virginia, AWS)"),
    ("https://app.us-east-2.aws.coalescesoftware.io", "US East (Ohio, AWS)"),
    ("https://app.us-west-2.aws.coalescesoftware.io", "US West (Oregon, AWS)"),
    ("https://app.centralus.azure.coalescesoftware.io", "US Central (Iowa, Azure)"),
    ("https://app.eastus2.azure.coalescesoftware.io", "US East 2 (Virginia, Azure)"),
    ("https://app.westus2.azure.coalescesoftware.io", "US West 2 (Azure)"),
    ("https://app.us-east-1.aws.privatelink.coalescesoftware.io", "US East PrivateLink (AWS)"),
    ("https://app.us-west-2.aws.privatelink.coalescesoftware.io", "US West PrivateLink (AWS)"),
]
OFFICIAL_HOSTS = frozenset(urlsplit(url).hostname for url, _ in OFFICIAL_BASE_URLS)
LOOPBACK_NAMES = frozenset({"localhost"})


def normalise_base_url(value: str) -> str:
    """Return the canonical base URL ("scheme://host[:port]") or raise ValidationError."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError("Enter a URL such as https://app.coalescesoftware.io.") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError("Enter a URL such as https://app.coalescesoftware.io.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError("The URL must not contain a user name or an @ sign.")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValidationError(
            "Enter only the scheme and host (for example https://app.coalescesoftware.io); "
            "the dashboard adds the API paths itself."
        )
    if _is_loopback(host):
        return _loopback_url(parts.scheme, host, port)
    if parts.scheme != "https":
        raise ValidationError("Coalesce must be reached over https.")
    if _is_ip(host):
        raise ValidationError("Use Coalesce's host name, not an IP address.")
    if port not in (None, 443):
        raise ValidationError("Coalesce is served on the standard https port; remove the port.")
    if host not in OFFICIAL_HOSTS and host not in _allowed_hosts():
        raise ValidationError(
            f"{host} is not an official Coalesce host. An operator can allow it by adding it "
            "to COALESCE_ALLOWED_HOSTS."
        )
    return f"https://{host}"


def _allowed_hosts() -> set[str]:
    return {h.lower().rstrip(".") for h in settings.COALESCE_ALLOWED_HOSTS}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_url(scheme: str, host: str, port: int | None) -> str:
    if not settings.COALESCE_ALLOW_INSECURE_LOOPBACK:
        raise ValidationError(
            "Loopback addresses are only allowed for the local simulator, when "
            "COALESCE_ALLOW_INSECURE_LOOPBACK=true."
        )
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port else "")


# Snowflake identifiers: unquoted names, or double-quoted names with "" for a quote.
_UNQUOTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_QUOTED = re.compile(r'^"(?:[^"]|"")+"$')
MAX_IDENTIFIER = 255


def validate_snowflake_identifier(value: str, what: str) -> str:
    """Check a warehouse or role name as Snowflake would resolve it; return it unchanged."""
    if value.startswith('"'):
        if not _QUOTED.match(value):
            raise ValidationError(
                f'A quoted {what} name must end with a double quote, and a quote inside it '
                f'is written twice ("").'
            )
        if len(value[1:-1].replace('""', '"')) > MAX_IDENTIFIER:
            raise ValidationError(f"A {what} name has at most {MAX_IDENTIFIER} characters.")
        return value
    if len(value) > MAX_IDENTIFIER:
        raise ValidationError(f"A {what} name has at most {MAX_IDENTIFIER} characters.")
    if not _UNQUOTED.match(value):
        if value[:1].isdigit():
            problem = "must start with a letter or underscore"
        else:
            problem = "may use only letters, digits, _ and $"
        raise ValidationError(
            f'An unquoted {what} name {problem}. Names with spaces, dashes or exact case must '
            f'be wrapped in double quotes, e.g. "Data Team".'
        )
    return value


def validate_login_name(value: str) -> str:
    """A Snowflake login name: often an e-mail address, so not an identifier."""
    if value != value.strip():
        raise ValidationError("Remove the spaces before or after the user name.")
    if not 1 <= len(value) <= MAX_IDENTIFIER:
        raise ValidationError(f"A user name has 1 to {MAX_IDENTIFIER} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("The user name contains a control character.")
    return value
