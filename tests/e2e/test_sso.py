"""Single sign-on end to end: Chromium, the dashboard and a real OpenID provider
(oidc-provider-mock) on 127.0.0.1, whose users' claims the test sets."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import User
from oidc_provider_mock import run_server_in_thread
from playwright.sync_api import expect

from runs import sso
from tests.factories import make_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider(settings):
    with run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        settings.OIDC_ISSUER = issuer
        settings.OIDC_CLIENT_ID = settings.OIDC_RP_CLIENT_ID = "dashboard"
        settings.OIDC_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET = "dashboard-secret"
        settings.OIDC_PROVIDER_NAME = "Acme ID"
        settings.OIDC_GROUP_MAP = {"dash-analysts": ["analysts"], "dash-admins": ["is_staff"]}
        settings.AUTHENTICATION_BACKENDS = [
            "axes.backends.AxesStandaloneBackend", "runs.sso.GroupMappingOIDCBackend",
            "runs.auth_backends.ModelBackend"]
        sso._cache.clear()
        yield issuer
        sso._cache.clear()


def _set_claims(issuer: str, sub: str, **claims) -> None:
    requests.put(f"{issuer}/users/{sub}", json=claims, timeout=5).raise_for_status()


def _sign_in(page, sub: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Log in with Acme ID").click()
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def test_sign_in_groups_follow_the_provider_and_log_out(page, provider, analysts):
    make_profile(name="Production", groups=[analysts])
    _set_claims(provider, "u-123", email="dana@example.com", name="Dana Scully",
                preferred_username="dana", groups=["dash-analysts", "unrelated"])

    _sign_in(page, "u-123")
    expect(page.get_by_role("button", name="Log out dana")).to_be_visible()
    user = User.objects.get(username="dana")
    assert (user.email, user.first_name, user.last_name) == ("dana@example.com", "Dana",
                                                            "Scully")
    page.goto("/runs/new/")
    expect(page.get_by_label("Environment", exact=True)).to_contain_text("Production")
    page.get_by_role("button", name="Log out dana").click()
    expect(page.get_by_role("link", name="Log in with Acme ID")).to_be_visible()

    # Removed from the group at the provider: the next login takes the environment away.
    _set_claims(provider, "u-123", email="dana@example.com", name="Dana Scully",
                preferred_username="dana", groups=[])
    _sign_in(page, "u-123")
    expect(page.get_by_role("button", name="Log out dana")).to_be_visible()
    page.goto("/runs/new/")
    expect(page.get_by_text("Production")).to_have_count(0)
    assert not User.objects.get(username="dana").groups.exists()
    page.get_by_role("button", name="Log out dana").click()
    expect(page.get_by_role("link", name="Log in with Acme ID")).to_be_visible()
