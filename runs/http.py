"""Request helpers shared by views, the audit trail and the admin."""

from __future__ import annotations

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
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= proxies and forwarded[-proxies]:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None
