"""Sending one message: email through Django's backend, Slack and webhooks over https.

Every failure is a SendError with a plain message that names no URL (Slack's URLs hold a
token) and says whether trying again may help: timeouts, connection errors, 429 and 5xx
may; any other 4xx, a redirect or a refused address will not.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail

from runs.notifications import messages
from runs.notifications.models import Delivery, Destination

CONNECT_TIMEOUT, READ_TIMEOUT = 5, 10
SIGNATURE_HEADER = "X-Dashboard-Signature"


class SendError(Exception):
    def __init__(self, message: str, *, retry: bool):
        super().__init__(message)
        self.message, self.retry = message, retry


def check_url(url: str) -> str | None:
    """Why `url` may not receive messages (None when it may): https only, and no private,
    loopback or link-local address, unless WEBHOOK_ALLOW_LOOPBACK allows loopback (tests,
    local development)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback_ok = settings.WEBHOOK_ALLOW_LOOPBACK
    if parts.scheme != "https" and not (loopback_ok and parts.scheme == "http"):
        return "Only https URLs are allowed."
    if not host or parts.username or parts.password:
        return "The URL needs a host name and no user name or password."
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443)}
    except (socket.gaierror, UnicodeError):
        return "The host name does not resolve."
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback and loopback_ok:
            continue
        if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                or ip.is_multicast or ip.is_unspecified):
            return "The host resolves to a private, loopback or link-local address."
    if parts.scheme == "http" and not all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                                          for a in addresses):
        return "Only https URLs are allowed."
    return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Stripe's scheme: HMAC-SHA256 over "<timestamp>.<body>", sent as t=…,v1=…"""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def send(delivery: Delivery) -> None:
    run, destination = delivery.run, delivery.destination
    if destination is None:  # a subscriber
        _email([delivery.email], run)
    elif destination.kind == Destination.Kind.EMAIL:
        _email([a.strip() for a in destination.email_to.split(",") if a.strip()], run)
    elif destination.kind == Destination.Kind.SLACK:
        _post(destination.get_secret("url"), json.dumps(messages.slack(run)).encode(), {})
    else:
        body = json.dumps(messages.facts(run, delivery.event), sort_keys=True).encode()
        headers = {"X-Dashboard-Event": delivery.event,
                   "X-Dashboard-Delivery": str(delivery.pk)}
        secret = destination.get_secret("signing_secret")
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), body)
        _post(destination.get_secret("url"), body, headers)


def _email(to: list[str], run) -> None:
    if not to:
        raise SendError("No email address to send to.", retry=False)
    try:
        send_mail(messages.subject(run), messages.text(run), settings.DEFAULT_FROM_EMAIL, to)
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        raise SendError(f"The mail server answered {exc.smtp_code}.", retry=not permanent
                        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"Could not reach the mail server ({type(exc).__name__}).",
                        retry=True) from None


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    refusal = check_url(url)
    if refusal:
        raise SendError(f"Not sent: {refusal}", retry=False)
    try:
        response = requests.post(url, data=body, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                 allow_redirects=False,
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "coalesce-refresh-dashboard", **headers})
    except requests.Timeout:
        raise SendError(f"No answer within {CONNECT_TIMEOUT + READ_TIMEOUT} s.",
                        retry=True) from None
    except requests.RequestException as exc:
        raise SendError(f"Could not connect ({type(exc).__name__}).", retry=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    retry = status >= 500 or status == 429
    raise SendError(f"The destination answered HTTP {status}.", retry=retry)
