"""The login page: single sign-on when configured, passwords unless LOCAL_LOGIN=false."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseForbidden
from django.shortcuts import render

logout = auth_views.LogoutView.as_view()

LOCAL_LOGIN_OFF = "Password login is turned off here: use single sign-on."


def login(request):
    if request.method == "POST" and not settings.LOCAL_LOGIN:
        return HttpResponseForbidden(LOCAL_LOGIN_OFF)
    # Read per request, so a changed setting (tests, a reload) shows at once.
    return auth_views.LoginView.as_view(extra_context={
        "sso_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_ISSUER else "",
        "local_login": settings.LOCAL_LOGIN,
        "sso_failed": request.GET.get("sso") == "failed",
    })(request)


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): a plain page, 429."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    username = credentials.get("username", "") if isinstance(credentials, dict) else ""
    return render(request, "registration/locked_out.html",
                  {"username": username, "minutes": minutes}, status=429)
