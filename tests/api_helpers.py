"""Tokens and calls for the API tests."""

from __future__ import annotations

import json

from runs import tokens
from runs.models import ApiToken

BOTH = [ApiToken.Scope.READ, ApiToken.Scope.START]


def make_token(user, *, name="ci", scopes=BOTH, expires_at=None) -> str:
    """A token for `user`; returns the secret a script would send."""
    _, secret = tokens.create_token(user, name=name, scopes=list(scopes),
                                    expires_at=expires_at, ip=None)
    return secret


def call(client, method: str, path: str, token: str | None, body=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(client, method)(f"/api/v1{path}", **kwargs)
