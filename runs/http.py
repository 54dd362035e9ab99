"""Request helpers shared by views, the audit trail and the admin."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    user: User


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, trusting only TRUSTED_PROXY_COUNT proxies' X-Forwarded-For.

    Each trusted proxy appends the address it received the request from, so the client is
    the entry that many places from the end; anything before it could be forged.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    address = request.META.get("REMOTE_ADDR")
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= proxies and forwarded[-proxies]:
            address = forwarded[-proxies]
    # Only a real address: the column is inet on PostgreSQL, and junk such as "unknown"
    # would fail the insert (a 500 with nothing recorded).
    try:
        return str(ipaddress.ip_address(address or ""))
    except ValueError:
        return None
