"""Response headers that depend on who asked."""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every answer to a logged-in user (pages, fragments and
    CSV exports): they show run details and audit entries that must not stay in a shared
    or browser cache after logout. Anonymous pages (login, health checks) are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response
