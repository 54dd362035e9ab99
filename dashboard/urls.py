from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from runs.api import pages as api_pages
from runs.api.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/docs/", api_pages.api_docs, name="api_docs"),
    path("api/v1/", api.urls),
    path("settings/", api_pages.my_settings, name="my_settings"),
    path("settings/tokens/", api_pages.token_list, name="api_tokens"),
    path("settings/tokens/<int:pk>/revoke/", api_pages.revoke_token, name="revoke_api_token"),
    path("", include("runs.urls")),
]
