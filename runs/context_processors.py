"""What every page's navigation needs, computed once per request."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from runs.models import EnvironmentProfile


def navigation(request: HttpRequest) -> dict:
    """`may_start_runs`: whether the user may start a run on any environment (the
    navigation's "Start a refresh run" link). Lazy: pages that never ask pay nothing."""
    user = getattr(request, "user", None)

    def may_start() -> bool:
        if user is None or not user.is_authenticated:
            return False
        return EnvironmentProfile.objects.runnable_by(user).exists()

    return {"may_start_runs": SimpleLazyObject(may_start)}
