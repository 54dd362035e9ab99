"""System checks: configuration errors surface at `manage.py check` and at startup,
before the first request, instead of as a 500 on the first profile save."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from runs.encryption import KeyRingError, parse_key_ring


@register(Tags.security, deploy=False)
def check_secret_key(app_configs=None, **kwargs):
    try:
        if settings.SECRET_KEY:
            return []
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        pass
    return [
        Error(
            "SECRET_KEY is not set.",
            hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value, e.g. the output "
            "of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
            id="runs.E001",
        )
    ]


@register(Tags.security)
def check_credentials_key_ring(app_configs=None, **kwargs):
    try:
        parse_key_ring(settings.CREDENTIALS_ENCRYPTION_KEYS)
    except KeyRingError as exc:
        return [
            Error(
                f"Credential encryption keys: {exc}",
                hint="Set CREDENTIALS_ENCRYPTION_KEYS (or CREDENTIALS_ENCRYPTION_KEYS_FILE) to "
                "'keyid:base64key' pairs, newest first; `manage.py generate_credentials_key` "
                "prints a new one. Losing the key means re-entering every stored credential.",
                id="runs.E002",
            )
        ]
    return []


@register(Tags.security)
def check_sign_in(app_configs=None, **kwargs):
    """Someone must be able to log in, and single sign-on must talk https."""
    errors = []
    if not settings.LOCAL_LOGIN and not settings.OIDC_ISSUER:
        errors.append(Error(
            "LOCAL_LOGIN is false and OIDC_ISSUER is not set: nobody can log in.",
            hint="Set OIDC_ISSUER (single sign-on), or LOCAL_LOGIN=true.", id="runs.E003"))
    issuer = urlsplit(settings.OIDC_ISSUER)
    loopback = issuer.hostname in ("localhost", "127.0.0.1", "::1")
    if settings.OIDC_ISSUER and issuer.scheme != "https" and not (settings.DEBUG and loopback):
        errors.append(Error(
            f"OIDC_ISSUER must be an https URL, not {settings.OIDC_ISSUER!r}.",
            hint="Plain http is accepted only for a provider on this machine with DEBUG=true.",
            id="runs.E004"))
    return errors


def raise_on_configuration_errors() -> None:
    """Fail at process start when a required setting is missing.

    gunicorn runs no system checks, so dashboard.wsgi calls this: a worker that cannot
    decrypt credentials should refuse to boot rather than fail at the first request.
    """
    errors = check_secret_key() + check_credentials_key_ring() + check_sign_in()
    if errors:
        raise ImproperlyConfigured(" ".join(f"{e.msg} {e.hint}" for e in errors))
