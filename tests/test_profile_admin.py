"""The environment profile page in the Django admin: labels, validation by auth type, the
write-only secrets, the change history and the "Test connection" action.

Everything goes through the real admin views with `admin_client`. Keys are generated here.
Assertions about secrets check membership (`not in`), so a failing test never prints one.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse
from django.views.debug import get_default_exception_reporter_filter
from responses import matchers

from runs import private_keys as keys
from runs.models import EnvironmentProfile
from tests.factories import key_body_lines, pem_of, profile_form

ADD_URL = reverse("admin:runs_environmentprofile_add")
CHANGELIST_URL = reverse("admin:runs_environmentprofile_changelist")
BASE = "https://app.coalescesoftware.io"
RUNS_URL = f"{BASE}/api/v1/runs"
LIST_QUERY = {"limit": "1", "orderBy": "id", "orderByDirection": "desc", "detail": "false"}
TOKEN = "tok-admin-test-7c1d9e2f4a"
PASSWORD = "pw-admin-test-5b8e3a1c"
PASSPHRASE = "pp-admin-test-9f0e2d7b"
SECRET_FIELDS = ("api_token", "snowflake_password", "private_key", "private_key_passphrase")


@pytest.fixture
def key(rsa_key) -> rsa.RSAPrivateKey:
    return rsa_key


def fingerprint(private_key) -> str:
    """Snowflake's RSA_PUBLIC_KEY_FP, computed here rather than with runs.keys."""
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def profile_data(**overrides) -> dict[str, str]:
    """Everything the admin form posts, for a valid Basic profile."""
    return profile_form(**{"api_token": TOKEN, "snowflake_password": PASSWORD, **overrides})


def keypair_data(pem: str, passphrase: str = "", **overrides) -> dict[str, str]:
    return profile_data(
        snowflake_auth_type="KeyPair",
        snowflake_password="",
        private_key=pem,
        private_key_passphrase=passphrase,
        **overrides,
    )


def add(client, data):
    return client.post(ADD_URL, data)


def change(client, profile, data):
    url = reverse("admin:runs_environmentprofile_change", args=[profile.pk])
    return client.post(url, data)


def saved(response) -> EnvironmentProfile:
    assert response.status_code == 302, form_errors(response)
    return EnvironmentProfile.objects.get(name="Staging")


def form_errors(response) -> dict[str, list[str]]:
    return response.context["adminform"].form.errors


def change_page(client, profile) -> str:
    url = reverse("admin:runs_environmentprofile_change", args=[profile.pk])
    return client.get(url).content.decode()


# --- the page -------------------------------------------------------------------------------


def test_it_labels_every_field(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    for label in [
        "Name",
        "Coalesce base URL",
        "Environment ID",
        "Coalesce API token",
        "Default job ID",
        "Default parallelism",
        "Allowed groups",
        "Snowflake auth type",
        "Snowflake username",
        "Snowflake password",
        "Private key (PEM)",
        "Private key passphrase",
        "Snowflake warehouse",
        "Snowflake role",
    ]:
        assert f">{label}:</label>" in page, label


def test_it_redirects_anonymous_users_to_the_admin_login(client, db):
    response = client.get(ADD_URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_it_shows_the_key_field_as_a_monospace_textarea(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    textarea = re.search(r"<textarea[^>]*name=\"private_key\"[^>]*>", page)
    assert textarea is not None
    # Styled from a stylesheet (the Content-Security-Policy refuses style attributes).
    assert 'class="pem-input"' in textarea.group(0)
    assert "runs/admin.css" in page


def test_it_defaults_parallelism_to_16(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    field = re.search(r"<input[^>]*name=\"default_parallelism\"[^>]*>", page).group(0)
    assert 'value="16"' in field


def test_it_shows_base_url_errors(admin_client):
    response = add(admin_client, profile_data(base_url=f"{BASE}@evil.example"))
    assert form_errors(response)["base_url"] == [
        "The URL must not contain a user name or an @ sign."
    ]
    assert "The URL must not contain a user name or an @ sign." in response.content.decode()


def test_it_shows_warehouse_and_role_errors(admin_client):
    response = add(admin_client, profile_data(snowflake_warehouse="1WH", snowflake_role="a-b"))
    errors = form_errors(response)
    assert "must start with a letter or underscore" in errors["snowflake_warehouse"][0]
    assert "may use only letters, digits, _ and $" in errors["snowflake_role"][0]
    assert not EnvironmentProfile.objects.exists()


# --- validation by auth type -------------------------------------------------------------------


def test_it_saves_a_basic_profile(admin_client):
    profile = saved(add(admin_client, profile_data()))
    assert profile.get_secret("snowflake_password") == PASSWORD
    assert profile.get_secret("api_token") == TOKEN
    assert profile.default_parallelism == 16


def test_it_requires_a_username_and_password_for_basic(admin_client):
    response = add(admin_client, profile_data(snowflake_username="", snowflake_password=""))
    errors = form_errors(response)
    assert errors["snowflake_username"] == ["Basic authentication needs a username."]
    assert errors["snowflake_password"] == ["Basic authentication needs a password."]


def test_it_requires_a_username_and_key_for_keypair(admin_client):
    response = add(admin_client, keypair_data("", snowflake_username=""))
    errors = form_errors(response)
    assert errors["snowflake_username"] == ["KeyPair authentication needs a username."]
    assert errors["private_key"] == ["KeyPair authentication needs a private key."]


def test_it_saves_an_unencrypted_key_without_a_passphrase(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    assert profile.has_secret("private_key")
    assert not profile.has_secret("private_key_passphrase")
    assert profile.private_key_encrypted is False


def test_it_asks_for_the_passphrase_of_an_encrypted_key(admin_client, key):
    response = add(admin_client, keypair_data(pem_of(key, passphrase=PASSPHRASE)))
    assert form_errors(response)["private_key_passphrase"] == [keys.NEEDS_PASSPHRASE]
    assert not EnvironmentProfile.objects.exists()


def test_it_saves_an_oauth_profile_without_snowflake_secrets(admin_client):
    data = profile_data(snowflake_auth_type="OAuth", snowflake_username="", snowflake_password="")
    profile = saved(add(admin_client, data))
    assert [n for n in SECRET_FIELDS if profile.has_secret(n)] == ["api_token"]


def test_it_refuses_a_password_for_oauth(admin_client):
    response = add(admin_client, profile_data(snowflake_auth_type="OAuth"))
    assert form_errors(response)["snowflake_password"] == [
        "OAuth authentication does not use a snowflake password; leave this empty or change "
        "the auth type."
    ]
    assert not EnvironmentProfile.objects.exists()


def test_it_requires_an_api_token(admin_client):
    response = add(admin_client, profile_data(api_token=""))
    assert "api_token" in form_errors(response)


# --- secrets are write-only -------------------------------------------------------------------


def test_it_never_redisplays_a_pasted_key_with_errors(admin_client, key):
    pem = pem_of(key, passphrase=PASSPHRASE)
    response = add(admin_client, keypair_data(pem, PASSPHRASE, snowflake_role="no spaces"))
    page = response.content.decode()
    assert "snowflake_role" in form_errors(response)
    assert not [line for line in key_body_lines(pem) if line in page]
    assert PASSPHRASE not in page
    assert TOKEN not in page


def test_it_never_redisplays_a_typed_password_with_errors(admin_client):
    response = add(admin_client, profile_data(snowflake_warehouse="no spaces"))
    page = response.content.decode()
    assert "snowflake_warehouse" in form_errors(response)
    assert PASSWORD not in page
    assert TOKEN not in page


def test_it_shows_the_stored_key_by_size_and_fingerprint(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    page = change_page(admin_client, profile)
    assert f"Stored: RSA 2048, {fingerprint(key)}, updated " in page
    assert re.search(r"Stored: RSA 2048, \S+, updated [^<]+ by admin", page)
    assert not [line for line in key_body_lines(pem_of(key)) if line in page]


def test_it_shows_the_stored_password_and_token_by_status_only(admin_client):
    profile = saved(add(admin_client, profile_data()))
    page = change_page(admin_client, profile)
    # One line for the token, one for the password.
    assert len(re.findall(r"Stored, updated \d{4}-\d\d-\d\d \d\d:\d\d [^<]* by admin", page)) == 2
    assert PASSWORD not in page
    assert TOKEN not in page


def test_it_keeps_stored_secrets_when_the_fields_are_left_empty(admin_client):
    profile = saved(add(admin_client, profile_data()))
    response = change(admin_client, profile, profile_data(api_token="", snowflake_password=""))
    profile = saved(response)
    assert profile.get_secret("snowflake_password") == PASSWORD
    assert profile.get_secret("api_token") == TOKEN


def test_it_keeps_the_stored_key_when_the_field_is_left_empty(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key, passphrase=PASSPHRASE), PASSPHRASE)))
    stored = profile.get_secret("private_key")
    profile = saved(change(admin_client, profile, keypair_data("", api_token="")))
    assert profile.get_secret("private_key") == stored
    assert profile.get_secret("private_key_passphrase") == PASSPHRASE


def test_it_clears_the_stored_password_with_the_clear_box(admin_client):
    profile = saved(add(admin_client, profile_data()))
    data = profile_data(
        snowflake_auth_type="OAuth",
        snowflake_username="",
        snowflake_password="",
        clear_snowflake_password="on",
    )
    profile = saved(change(admin_client, profile, data))
    assert not profile.has_secret("snowflake_password")
    assert profile.get_secret("snowflake_password") == ""


def test_it_refuses_to_clear_the_password_basic_needs(admin_client):
    profile = saved(add(admin_client, profile_data()))
    data = profile_data(snowflake_password="", clear_snowflake_password="on")
    response = change(admin_client, profile, data)
    assert form_errors(response)["snowflake_password"] == ["Basic authentication needs a password."]
    profile.refresh_from_db()
    assert profile.get_secret("snowflake_password") == PASSWORD


def test_it_refuses_to_clear_the_key_without_a_new_one_under_keypair(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    response = change(admin_client, profile, keypair_data("", clear_private_key="on"))
    assert form_errors(response)["private_key"] == ["KeyPair authentication needs a private key."]
    profile.refresh_from_db()
    assert profile.has_secret("private_key")


def test_it_drops_the_key_and_passphrase_when_switching_to_basic(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key, passphrase=PASSPHRASE), PASSPHRASE)))
    profile = saved(change(admin_client, profile, profile_data(api_token="")))
    assert profile.get_secret("snowflake_password") == PASSWORD
    assert not profile.has_secret("private_key")
    assert not profile.has_secret("private_key_passphrase")
    assert (profile.private_key_size, profile.private_key_fingerprint) == (None, "")


# --- the stored key is canonical ----------------------------------------------------------------


def test_it_stores_a_crlf_key_as_canonical_pem(admin_client, key):
    pasted = pem_of(key).replace("\n", "\r\n")
    profile = saved(add(admin_client, keypair_data(pasted)))
    stored = profile.get_secret("private_key")
    assert "\r" not in stored
    assert stored.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert stored == pem_of(key)


def test_it_stores_a_pkcs1_key_as_pkcs8(admin_client, key):
    pasted = pem_of(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    assert pasted.startswith("-----BEGIN RSA PRIVATE KEY-----")
    profile = saved(add(admin_client, keypair_data(pasted)))
    assert profile.get_secret("private_key") == pem_of(key)


def test_it_stores_an_encrypted_key_with_its_passphrase(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key, passphrase=PASSPHRASE), PASSPHRASE)))
    stored = profile.get_secret("private_key")
    assert stored.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert profile.get_secret("private_key_passphrase") == PASSPHRASE
    assert profile.private_key_encrypted is True
    assert profile.private_key_fingerprint == fingerprint(key)
    loaded = serialization.load_pem_private_key(stored.encode(), PASSPHRASE.encode())
    assert loaded.private_numbers() == key.private_numbers()


def test_it_rejects_a_wrong_passphrase_and_stores_nothing(admin_client, key):
    pasted = pem_of(key, passphrase=PASSPHRASE)
    response = add(admin_client, keypair_data(pasted, "not-the-passphrase"))
    assert form_errors(response)["private_key_passphrase"] == [keys.WRONG_PASSPHRASE]
    assert "private_key" not in form_errors(response)
    assert not EnvironmentProfile.objects.exists()


# --- history ----------------------------------------------------------------------------------


def test_it_records_which_fields_changed_never_values(admin_client):
    profile = saved(add(admin_client, profile_data()))
    new_password = "pw-admin-test-changed-0a9b8c"
    data = profile_data(api_token="", snowflake_password=new_password, snowflake_warehouse="WH_2")
    saved(change(admin_client, profile, data))
    entry = LogEntry.objects.filter(object_id=str(profile.pk)).latest("action_time")
    message = entry.get_change_message()
    assert "Snowflake warehouse" in message
    assert "Snowflake password replaced" in message
    history = reverse("admin:runs_environmentprofile_history", args=[profile.pk])
    page = admin_client.get(history).content.decode()
    assert "Snowflake password replaced" in page
    for value in (PASSWORD, new_password, TOKEN):
        assert value not in entry.change_message
        assert value not in page


# --- Test connection ----------------------------------------------------------------------------


def run_test_connection(client, profile):
    data = {"action": "test_connection", "_selected_action": [profile.pk]}
    return client.post(CHANGELIST_URL, data, follow=True)


@responses.activate
def test_it_tests_the_connection(admin_client, profile):
    responses.get(RUNS_URL, json={"data": []}, match=[matchers.query_param_matcher(LIST_QUERY)])
    responses.get(f"{BASE}/api/v1/environments/{profile.environment_id}",
                  json={"id": profile.environment_id, "name": "PROD"})
    response = run_test_connection(admin_client, profile)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Production: Connected. Checked: the base URL and API token "
                              "(Coalesce listed runs); environment 42 (PROD) exists")
    assert "Not checked: the Snowflake credentials" in message
    assert len(responses.calls) == 2
    for call in responses.calls:
        assert call.request.headers["Authorization"] == "Bearer " + profile.get_secret(
            "api_token")


@responses.activate
def test_it_reports_a_rejected_token_in_plain_words(admin_client, profile):
    token = profile.get_secret("api_token")
    responses.get(
        RUNS_URL,
        status=401,
        json={"error": {"errorString": f"Invalid token {token}"}},
        match=[matchers.query_param_matcher(LIST_QUERY)],
    )
    response = run_test_connection(admin_client, profile)
    (message,) = list(get_messages(response.wsgi_request))
    assert message.level_tag == "error"
    assert str(message).startswith(
        "Production: Problem: Coalesce did not accept the access token (HTTP 401)"
    )
    assert token not in str(message)
    assert token not in response.content.decode()


# --- sensitive POST parameters ------------------------------------------------------------------


def test_it_marks_the_secret_fields_as_sensitive_post_parameters(admin_client, key):
    response = add(admin_client, keypair_data(pem_of(key), snowflake_role="no spaces"))
    request = response.wsgi_request
    assert set(SECRET_FIELDS) <= set(request.sensitive_post_parameters)
    shown = get_default_exception_reporter_filter().get_post_parameters(request)
    assert {name: shown[name] for name in SECRET_FIELDS} == dict.fromkeys(
        SECRET_FIELDS, "********************"
    )


# --- issue 9: one auth type's fields, retyping secrets, the key status line ---------------


def _fieldset_classes(page: str) -> dict[str, str]:
    """Each auth type's fieldset -> its class attribute."""
    return {m.group(2): m.group(1) for m in re.finditer(
        r'<fieldset class="([^"]*auth-(Basic|KeyPair)[^"]*)"', page)}


def test_only_the_current_auth_type_s_fields_are_shown(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    page = admin_client.get(reverse("admin:runs_environmentprofile_change",
                                    args=[profile.pk])).content.decode()
    classes = _fieldset_classes(page)
    assert "auth-inactive" not in classes["KeyPair"]
    assert "auth-inactive" in classes["Basic"]
    assert "runs/profile_admin.css" in page and "runs/profile_admin.js" in page


def test_without_javascript_a_changed_type_shows_its_fields_after_the_save(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    # The admin picked Basic and saved without a password (the field was hidden).
    response = change(admin_client, profile, profile_data(snowflake_auth_type="Basic",
                                                          snowflake_password="",
                                                          api_token=""))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Basic authentication needs a password." in page
    classes = _fieldset_classes(page)
    assert "auth-inactive" not in classes["Basic"] and "auth-inactive" in classes["KeyPair"]


def test_an_error_says_which_typed_secrets_must_be_typed_again(admin_client):
    response = add(admin_client, profile_data(environment_id=""))
    page = response.content.decode()
    assert "errornote" in page
    # Both were typed and are gone from the page: each field says so.
    assert page.count("Type it again: secrets are never sent back to the page") == 2
    assert TOKEN not in page and PASSWORD not in page


def test_the_key_status_is_its_own_line_with_the_alter_user_statement(admin_client, key):
    profile = saved(add(admin_client, keypair_data(pem_of(key))))
    page = admin_client.get(reverse("admin:runs_environmentprofile_change",
                                    args=[profile.pk])).content.decode()
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    assert "Key status" in page
    assert f"Fingerprint: <code>{fingerprint(key)}</code>" in page
    assert (f"ALTER USER {profile.snowflake_username} SET RSA_PUBLIC_KEY=&#x27;{public}&#x27;;"
            in page)
    assert profile.private_key_public == public
