"""Personal access tokens for the JSON API: making, finding, revoking (all audited).

A token is `crd_` followed by 43 URL-safe characters (32 random bytes). The prefix is
fixed so secret scanners can be taught it; the rest is shown once, when it is made, and
only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from runs import audit
from runs.models import ApiToken

TOKEN_PREFIX = "crd_"
SHOWN_PREFIX_LENGTH = 8  # "crd_" and four random characters: enough to tell tokens apart
# last_used_at is written at most this often per token, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user, *, name: str, scopes: list[str], expires_at: datetime | None,
                 ip: str | None) -> tuple[ApiToken, str]:
    """Make a token for `user`; returns the record and the token, which nobody sees again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=secret[:SHOWN_PREFIX_LENGTH], digest=digest_of(secret),
            scopes=sorted(set(scopes)), expires_at=expires_at)
        audit.record(audit.Action.TOKEN_CREATED, actor=user.get_username(), ip=ip,
                     target=f"API token {name}",
                     details={"prefix": token.prefix, "scopes": token.scopes,
                              "expires_at": expires_at.isoformat() if expires_at else None})
    return token, secret


def find_usable(secret: str) -> ApiToken | None:
    """The live token `secret` names (not revoked, not expired, its owner active), or None.
    Records when it was used."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(digest=digest_of(secret)).first())
    now = timezone.now()
    if token is None or not token.is_usable(now):
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def revoke(token: ApiToken, *, by, ip: str | None) -> bool:
    """Revoke `token` (by its owner or an admin). False when it was already revoked."""
    actor = by.get_username()
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor)
        if changed:
            audit.record(audit.Action.TOKEN_REVOKED, actor=actor, ip=ip,
                         target=f"API token {token.name}",
                         details={"prefix": token.prefix, "owner": token.user.get_username()})
    return bool(changed)


def may_revoke(user, token: ApiToken) -> bool:
    return token.user_id == user.pk or user.is_superuser or user.has_perm("runs.change_apitoken")
