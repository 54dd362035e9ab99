"""The session store (runs.sessions): Django's database sessions read with one fixed
statement. What a user notices must not change: a live session keeps them in, an expired
or logged-out one does not, and a made-up key is nobody."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

HISTORY = reverse("runs:list")


def logged_in(alice) -> Client:
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": "alice-password"})
    assert client.get(HISTORY).status_code == 200
    return client


def with_cookie(value: str) -> Client:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = value
    return client


def is_sent_to_login(response) -> bool:
    return response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.django_db
def test_a_live_session_keeps_its_user_in(alice):
    client = logged_in(alice)
    assert b"alice" in client.get(HISTORY).content


@pytest.mark.django_db
def test_an_expired_session_is_nobody(alice):
    client = logged_in(alice)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1))
    assert is_sent_to_login(client.get(HISTORY))


@pytest.mark.django_db
def test_a_logged_out_session_cannot_be_replayed(alice):
    client = logged_in(alice)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.post(reverse("logout"))
    assert is_sent_to_login(with_cookie(key).get(HISTORY))


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["x" * 32, "short", "' OR '1'='1", ""])
def test_a_made_up_session_key_is_nobody(alice, key):
    logged_in(alice)  # a real session exists beside it
    assert is_sent_to_login(with_cookie(key).get(HISTORY))


# --- the user behind a session (runs.auth_backends.load_user) ---


@pytest.mark.django_db
def test_the_user_is_loaded_as_the_orm_loads_it(alice):
    from django.contrib.auth.models import User

    from runs.auth_backends import load_user

    logged_in(alice)  # sets last_login
    loaded, fresh = load_user(alice.pk), User.objects.get(pk=alice.pk)
    assert {f.attname: getattr(loaded, f.attname) for f in User._meta.concrete_fields} == {
        f.attname: getattr(fresh, f.attname) for f in User._meta.concrete_fields}
    assert loaded.last_login.tzinfo is not None and loaded.is_active is True
    assert load_user("not a number") is None and load_user(alice.pk + 1000) is None


@pytest.mark.django_db
def test_a_deactivated_or_deleted_user_s_session_is_nobody(alice, bob):
    client = logged_in(alice)
    alice.is_active = False
    alice.save()
    assert is_sent_to_login(client.get(HISTORY))

    bob.set_password("bob-password")
    bob.save()
    other = Client()
    other.post(reverse("login"), {"username": "bob", "password": "bob-password"})
    bob.delete()
    assert is_sent_to_login(other.get(HISTORY))


@pytest.mark.django_db
def test_a_changed_password_ends_the_other_sessions(alice):
    client = logged_in(alice)
    alice.set_password("a-new-long-password-42")
    alice.save()
    assert is_sent_to_login(client.get(HISTORY))
