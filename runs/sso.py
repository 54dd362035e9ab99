"""Single sign-on with OpenID Connect (mozilla-django-oidc), configured from OIDC_ISSUER.

Why mozilla-django-oidc and not django-allauth: we need one provider and the login code
flow, nothing else. mozilla-django-oidc is an authentication backend plus three views;
allauth brings account management, e-mail verification, its own templates and a dozen
models that an internal tool with one identity provider would have to switch off.

What this module adds to it:
- discovery: the endpoints come from `<OIDC_ISSUER>/.well-known/openid-configuration`,
  fetched when first needed (not at startup: `make run` and the break-glass password login
  work while the provider is unreachable) and kept for an hour;
- users matched on (issuer, subject), created at first login with the e-mail and name;
- OIDC_GROUP_MAP: at every login the mapped Django groups (and staff / superuser, when the
  map mentions them) are set from the provider's groups claim; unmapped groups are left.
"""

from __future__ import annotations

import logging
import threading
import time

import jwt
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import transaction
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from runs.auth_backends import load_user
from runs.models import SSOIdentity

logger = logging.getLogger(__name__)

STAFF, SUPERUSER = "is_staff", "is_superuser"
_DISCOVERY_TTL = 3600
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_cache: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


class ProviderUnavailable(Exception):
    pass


def discovery() -> dict:
    """The provider's configuration document, fetched at most once an hour per process."""
    issuer = settings.OIDC_ISSUER.rstrip("/")
    with _lock:
        cached = _cache.get(issuer)
        if cached and time.monotonic() - cached[0] < _DISCOVERY_TTL:
            return cached[1]
        try:
            response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"The identity provider at {issuer} did not answer its "
                                      f"configuration ({type(exc).__name__}).") from None
        _cache[issuer] = (time.monotonic(), document)
        return document


def _oidc_setting(attr: str, *default):
    """mozilla-django-oidc's settings, with the provider's endpoints from discovery."""
    if attr in _ENDPOINTS:
        return discovery()[_ENDPOINTS[attr]]
    names = {"OIDC_RP_CLIENT_ID": "OIDC_CLIENT_ID", "OIDC_RP_CLIENT_SECRET": "OIDC_CLIENT_SECRET",
             "OIDC_RP_SCOPES": "OIDC_SCOPES"}
    if attr == "OIDC_RP_SIGN_ALGO":
        return "RS256"
    if hasattr(settings, names.get(attr, attr)):
        return getattr(settings, names.get(attr, attr))
    if default:
        return default[0]
    raise ImproperlyConfigured(f"Setting {attr} not found")


class _Lazy:
    """An endpoint attribute resolved by discovery when it is read, not in __init__."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __get__(self, instance, owner):
        return _oidc_setting(self.attr)


class GroupMappingOIDCBackend(OIDCAuthenticationBackend):
    OIDC_OP_TOKEN_ENDPOINT = _Lazy("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = _Lazy("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = _Lazy("OIDC_OP_JWKS_ENDPOINT")

    def __init__(self, *args, **kwargs):
        # Not the parent's __init__: it would fetch the endpoints for every password login.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = User

    get_settings = staticmethod(_oidc_setting)

    def retrieve_matching_jwk(self, token):
        """The provider's signing key: by `kid` when the token names one, else the only
        RS256 key the provider publishes (some providers leave `kid` out)."""
        header = jwt.get_unverified_header(token)
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=10)
        response.raise_for_status()
        keys = [k for k in response.json().get("keys", [])
                if k.get("alg", header.get("alg")) == header.get("alg")
                and k.get("use", "sig") == "sig"]
        if "kid" in header:
            keys = [k for k in keys if k.get("kid") == header["kid"]]
        if len(keys) != 1:
            raise SuspiciousOperation("the provider's signing key could not be chosen")
        return jwt.PyJWK(keys[0])

    def get_payload_data(self, token, key):
        payload = super().get_payload_data(token, key)
        # mozilla-django-oidc checks the signature and nonce; the issuer and audience too.
        audience = payload.get("aud")
        audience = [audience] if isinstance(audience, str) else audience or []
        if payload.get("iss", "").rstrip("/") != settings.OIDC_ISSUER.rstrip("/") or \
                settings.OIDC_CLIENT_ID not in audience:
            raise SuspiciousOperation("the ID token is not from our issuer or not for us")
        return payload

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def get_user(self, user_id):
        return load_user(user_id)  # as the parent's, without an ORM query built per request

    def filter_users_by_claims(self, claims):
        return User.objects.filter(sso_identity__issuer=settings.OIDC_ISSUER,
                                   sso_identity__subject=str(claims["sub"]))

    @transaction.atomic
    def create_user(self, claims) -> User:
        user = User(username=_free_username(claims), email=claims.get("email", ""))
        user.set_unusable_password()  # only the provider can sign this account in
        _apply_names(user, claims)
        user.save()
        SSOIdentity.objects.create(user=user, issuer=settings.OIDC_ISSUER,
                                   subject=str(claims["sub"]))
        sync_groups(user, claims)
        return user

    @transaction.atomic
    def update_user(self, user: User, claims) -> User:
        user.email = claims.get("email", user.email)
        _apply_names(user, claims)
        user.save()
        sync_groups(user, claims)
        return user

    def get_or_create_user(self, access_token, id_token, payload):
        user = super().get_or_create_user(access_token, id_token, payload)
        if user is not None and not user.is_active:
            raise SuspiciousOperation("a deactivated account tried to sign in")
        return user


def _free_username(claims) -> str:
    base = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:140]
    name, n = base, 1
    while User.objects.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _apply_names(user: User, claims) -> None:
    given, family = claims.get("given_name"), claims.get("family_name")
    if not (given or family) and claims.get("name"):
        given, _, family = str(claims["name"]).partition(" ")
    user.first_name = str(given or "")[:150]
    user.last_name = str(family or "")[:150]


def sync_groups(user: User, claims) -> None:
    """Set the user's mapped memberships from the groups claim; leave unmapped ones."""
    mapping: dict[str, list[str]] = settings.OIDC_GROUP_MAP
    given = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    given = {given} if isinstance(given, str) else {str(g) for g in given}
    wanted = {target for group in given for target in mapping.get(group, [])}
    every_target = {target for targets in mapping.values() for target in targets}
    managed = {t for t in every_target if t not in (STAFF, SUPERUSER)}
    keep = user.groups.exclude(name__in=managed)
    groups = [Group.objects.get_or_create(name=name)[0] for name in sorted(wanted & managed)]
    user.groups.set([*keep, *groups])
    if SUPERUSER in every_target:
        user.is_superuser = SUPERUSER in wanted
    if STAFF in every_target or SUPERUSER in every_target:
        user.is_staff = bool({STAFF, SUPERUSER} & wanted)
    user.save(update_fields=["is_staff", "is_superuser"])
    SSOIdentity.objects.filter(user=user).update(last_login_groups=sorted(given))


class DiscoveringAuthenticationRequestView(OIDCAuthenticationRequestView):
    """The redirect to the provider; a provider that does not answer gets a plain page."""

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID

    get_settings = staticmethod(_oidc_setting)

    def get(self, request):
        try:
            self.OIDC_OP_AUTH_ENDPOINT = _oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnavailable as exc:
            logger.warning("Single sign-on unavailable: %s", exc)
            return render(request, "registration/sso_unavailable.html",
                          {"problem": str(exc)}, status=503)
        return super().get(request)
