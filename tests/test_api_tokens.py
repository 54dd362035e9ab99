"""The API tokens page: make a token (shown once), list, revoke; the admin's view."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from runs import tokens
from runs.models import ApiToken, AuditEntry
from tests.api_helpers import call, make_token
from tests.factories import assert_redirects_to_login

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"crd_[A-Za-z0-9_-]{32,}")


def test_it_makes_a_token_shown_once_and_stored_as_a_hash(alice_client, alice):
    response = alice_client.post(reverse("api_tokens"), {
        "name": "nightly CI", "scopes": ["runs:read", "runs:start"], "expires_in": "30"})
    page = response.content.decode()
    secret = TOKEN.search(page).group()
    assert "shown only this once" in page
    assert "no-store" in response["Cache-Control"].split(", ")
    token = ApiToken.objects.get()
    assert token.digest == tokens.digest_of(secret) and secret not in str(vars(token))
    assert token.prefix == secret[:8] and token.expires_at is not None
    assert secret not in alice_client.get(reverse("api_tokens")).content.decode()
    entry = AuditEntry.objects.get(action=AuditEntry.Action.TOKEN_CREATED)
    assert entry.actor == "alice" and entry.details["scopes"] == ["runs:read", "runs:start"]
    assert call(alice_client, "get", "/runs", secret).status_code == 200


def test_a_second_live_token_with_the_same_name_is_refused(alice_client, alice):
    make_token(alice, name="ci")
    page = alice_client.post(reverse("api_tokens"), {"name": "ci", "scopes": ["runs:read"]})
    assert "already have a token named" in page.content.decode()
    assert ApiToken.objects.count() == 1


def test_the_page_lists_only_your_tokens_and_needs_a_login(client, alice, bob):
    make_token(alice, name="alices")
    make_token(bob, name="bobs")
    assert_redirects_to_login(client.get(reverse("api_tokens")))
    client.force_login(alice)
    page = client.get(reverse("api_tokens")).content.decode()
    assert "alices" in page and "bobs" not in page
    assert 'href="/settings/tokens/"' in page  # the nav link, on every page


def test_the_owner_revokes_and_the_token_stops_working(alice_client, alice):
    secret = make_token(alice)
    token = ApiToken.objects.get()
    alice_client.post(reverse("revoke_api_token", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == "alice"
    assert call(alice_client, "get", "/runs", secret).status_code == 401
    assert AuditEntry.objects.filter(action=AuditEntry.Action.TOKEN_REVOKED).count() == 1


def test_someone_else_cannot_revoke_but_an_admin_can(alice, bob, admin_user):
    make_token(alice)
    token = ApiToken.objects.get()
    bobs, admin_client = Client(), Client()
    bobs.force_login(bob)
    admin_client.force_login(admin_user)
    assert bobs.post(reverse("revoke_api_token", args=[token.pk])).status_code == 404
    admin_client.post(reverse("admin:runs_apitoken_changelist"),
                      {"action": "revoke_tokens", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_by == "admin"
    entry = AuditEntry.objects.get(action=AuditEntry.Action.TOKEN_REVOKED)
    assert entry.details["owner"] == "alice"


def test_my_settings_sets_whether_notify_starts_ticked(alice_client, alice, profile):
    from runs.forms import RunForm

    assert RunForm(user=alice)["notify"].initial is False
    page = alice_client.get(reverse("my_settings")).content.decode()
    assert "alice@example.com" in page
    alice_client.post(reverse("my_settings"), {"notify_by_default": "on"})
    assert RunForm(user=alice)["notify"].initial is True
    assert RunForm(user=alice).fields["notify"].label == "Notify me when this run ends"
