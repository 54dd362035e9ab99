"""Single sign-on without a browser: group mapping, local login switch, account matching.
(The browser test against a real provider is tests/e2e/test_sso.py.)"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from runs import sso
from runs.models import SSOIdentity

pytestmark = pytest.mark.django_db


@pytest.fixture
def oidc(settings):
    settings.OIDC_ISSUER = "https://id.example.com"
    settings.OIDC_CLIENT_ID = "dashboard"
    settings.OIDC_CLIENT_SECRET = "s3cret"
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    settings.OIDC_GROUP_MAP = {"idp-analysts": ["analysts"], "idp-auditors": ["auditors"],
                               "idp-admins": ["is_staff"], "idp-root": ["is_superuser"]}
    return settings


def _claims(**extra):
    return {"sub": "u-1", "email": "dana@example.com", "name": "Dana Scully",
            "preferred_username": "dana", **extra}


def test_it_creates_the_user_with_email_name_and_mapped_groups(oidc):
    user = sso.GroupMappingOIDCBackend().create_user(_claims(groups=["idp-analysts", "x"]))
    assert (user.username, user.email, user.get_full_name()) == ("dana", "dana@example.com",
                                                                "Dana Scully")
    assert list(user.groups.values_list("name", flat=True)) == ["analysts"]
    assert not user.has_usable_password()
    assert SSOIdentity.objects.get(user=user).subject == "u-1"


def test_mapped_groups_follow_the_provider_and_unmapped_ones_stay(oidc):
    backend = sso.GroupMappingOIDCBackend()
    user = backend.create_user(_claims(groups=["idp-analysts", "idp-admins"]))
    user.groups.add(Group.objects.create(name="local-only"))
    assert user.is_staff
    backend.update_user(user, _claims(groups=["idp-auditors"]))
    assert set(user.groups.values_list("name", flat=True)) == {"auditors", "local-only"}
    assert not user.is_staff and not user.is_superuser


def test_superuser_implies_staff(oidc):
    user = sso.GroupMappingOIDCBackend().create_user(_claims(groups=["idp-root"]))
    assert user.is_superuser and user.is_staff


def test_a_provider_account_never_takes_over_a_local_account_by_email(oidc):
    local = User.objects.create_superuser("root", "dana@example.com", "pw")
    backend = sso.GroupMappingOIDCBackend()
    assert not backend.filter_users_by_claims(_claims()).exists()
    user = backend.create_user(_claims(preferred_username="root"))
    assert user.pk != local.pk and user.username == "root-2"


def test_the_login_page_offers_the_provider(oidc, client):
    page = client.get(reverse("login")).content.decode()
    assert "Log in with Acme ID" in page and 'name="password"' in page


def test_without_a_provider_the_login_page_is_the_password_form(client, settings):
    settings.OIDC_ISSUER = ""
    page = client.get(reverse("login")).content.decode()
    assert "Log in with" not in page and 'name="password"' in page


def test_local_login_off_refuses_passwords(oidc, client, alice):
    oidc.LOCAL_LOGIN = False
    page = client.get(reverse("login")).content.decode()
    assert "Log in with Acme ID" in page and 'name="password"' not in page
    response = client.post(reverse("login"), {"username": "alice",
                                              "password": "alice-password"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_admin_login_is_the_one_login_page(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_an_unreachable_provider_gets_a_plain_page(oidc, client):
    oidc.OIDC_ISSUER = "http://127.0.0.1:9"
    sso._cache.clear()
    response = client.get(reverse("oidc_authentication_init"))
    assert response.status_code == 503
    assert "did not answer" in response.content.decode()


def test_the_group_map_setting_is_checked():
    from django.core.exceptions import ImproperlyConfigured

    from dashboard.settings import _group_map

    assert _group_map('{"a": "b", "c": ["d", "is_staff"]}') == {"a": ["b"],
                                                                 "c": ["d", "is_staff"]}
    with pytest.raises(ImproperlyConfigured):
        _group_map("[1]")


def test_the_checks_refuse_a_setup_nobody_can_log_in_to(settings):
    from runs.checks import check_sign_in

    settings.LOCAL_LOGIN, settings.OIDC_ISSUER = False, ""
    assert [e.id for e in check_sign_in()] == ["runs.E003"]
    settings.OIDC_ISSUER, settings.DEBUG = "http://id.example.com", False
    assert [e.id for e in check_sign_in()] == ["runs.E004"]
    settings.OIDC_ISSUER = "https://id.example.com"
    assert check_sign_in() == []
