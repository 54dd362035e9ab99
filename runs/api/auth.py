"""Who is calling: a personal access token in `Authorization: Bearer crd_…`, its scopes
and its rate limit. Errors are ApiError, which runs.api.api turns into JSON."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from ninja.security import HttpBearer

from runs import tokens
from runs.models import ApiToken


class ApiError(Exception):
    """An error answer: HTTP status, stable code, plain message (and per-field problems)."""

    def __init__(self, status: int, code: str, message: str, *,
                 errors: dict[str, list[str]] | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.headers = errors, headers or {}


UNAUTHENTICATED = ("Send a personal access token as “Authorization: Bearer crd_…”. "
                   "It may be wrong, expired or revoked: make one on the API tokens page.")


class TokenAuth(HttpBearer):
    """request.auth becomes the ApiToken; the owner becomes request.user."""

    def __call__(self, request):
        token = super().__call__(request)
        if token is None:
            raise ApiError(401, "unauthenticated", UNAUTHENTICATED,
                           headers={"WWW-Authenticate": 'Bearer realm="api"'})
        return token

    def authenticate(self, request, token: str) -> ApiToken | None:
        found = tokens.find_usable(token)
        if found is None:
            return None
        throttle(found)
        request.user = found.user
        return found


def require_scope(request, scope: str) -> ApiToken:
    token: ApiToken = request.auth
    if scope not in token.scopes:
        raise ApiError(403, "insufficient_scope",
                       f"This token lacks the {scope} scope. Make a token with it on the "
                       "API tokens page.")
    return token


def throttle(token: ApiToken) -> None:
    """At most API_REQUESTS_PER_MINUTE requests per token in each clock minute.

    A counter per token and minute in Django's cache: shared by every process when the
    cache is (a database or Redis cache), per process with the default local memory one.
    """
    limit = settings.API_REQUESTS_PER_MINUTE
    now = time.time()
    window = int(now // 60)
    key = f"api-throttle:{token.digest[:24]}:{window}"
    cache.add(key, 0, timeout=90)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=90)
        count = 1
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * 60 - now))
        raise ApiError(429, "throttled",
                       f"Too many requests with this token (at most {limit} a minute). "
                       f"Try again in {retry_after} seconds.",
                       headers={"Retry-After": str(retry_after)})
