"""Audit entries for logins: who signed in, and which user names failed, from where."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from runs import audit


@receiver(user_logged_in)
def _login_succeeded(sender, request, user, **kwargs):
    audit.record_request(request, audit.Action.LOGIN_SUCCEEDED, actor=user.get_username())


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # `credentials` is already cleansed by Django; keep only the name that was tried.
    username = str(credentials.get("username", ""))[:150]
    if request is None:
        audit.record(audit.Action.LOGIN_FAILED, actor=username)
    else:
        audit.record_request(request, audit.Action.LOGIN_FAILED, actor=username)
