from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from runs import health, sso_views
from runs.api import pages as api_pages
from runs.api.api import api

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    # One login page for everyone (single sign-on and lockouts live there), the admin's too.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", sso_views.login, name="login"),
    path("accounts/logout/", sso_views.logout, name="logout"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/v1/docs/", api_pages.api_docs, name="api_docs"),
    path("api/v1/", api.urls),
    path("settings/", api_pages.my_settings, name="my_settings"),
    path("settings/tokens/", api_pages.token_list, name="api_tokens"),
    path("settings/tokens/<int:pk>/revoke/", api_pages.revoke_token, name="revoke_api_token"),
    path("", include("runs.urls")),
]
