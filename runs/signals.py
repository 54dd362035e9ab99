"""Audit entries for logins: who signed in, and which user names failed, from where.

Failed logins are collapsed: one entry per account name per lockout window (the first
failure), plus one when the account or address gets locked out. Without that, anyone could
append hash-chained rows as fast as they could post the login form and bury real entries.
django-axes keeps the exact counts (Axes > Access attempts in the admin).
"""

from __future__ import annotations

import logging

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from runs import audit
from runs.models import AuditEntry

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def _login_succeeded(sender, request, user, **kwargs):
    audit.record_request(request, audit.Action.LOGIN_SUCCEEDED, actor=user.get_username())


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # `credentials` is already cleansed by Django; keep only the name that was tried.
    username = str(credentials.get("username", ""))[:150]
    if getattr(request, "axes_locked_out", False):
        return  # refused by the lockout, which has its own entry
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if AuditEntry.objects.filter(action=audit.Action.LOGIN_FAILED, actor=username,
                                 at__gte=since).exists():
        return
    details = {"collapsed_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)}
    if request is None:
        audit.record(audit.Action.LOGIN_FAILED, actor=username, details=details)
    else:
        audit.record_request(request, audit.Action.LOGIN_FAILED, actor=username,
                             details=details)


@receiver(user_locked_out)
def _locked_out(sender, request, username, ip_address, **kwargs):
    # django-axes signals again at every attempt during a lockout: one entry per account
    # or address per window is enough.
    actor = str(username or "")[:150]
    ip = audit.stored_ip(ip_address)
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    same = Q(actor=actor) | Q(ip=ip) if ip else Q(actor=actor)
    if AuditEntry.objects.filter(same, action=audit.Action.LOGIN_LOCKED_OUT,
                                 at__gte=since).exists():
        return
    logger.warning("Login locked out for %s minutes after repeated failures",
                   int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    audit.record_request(request, audit.Action.LOGIN_LOCKED_OUT, actor=actor,
                         details={"minutes": int(settings.AXES_COOLOFF_TIME.total_seconds()
                                                 // 60)})
