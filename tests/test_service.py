"""Tests for runs.service: the startRun body, the run record, and what the run page shows.

Coalesce is mocked with `responses` (the `coalesce` fixture): a call to any URL that is not
registered fails, so `len(coalesce.calls) == 0` proves nothing was sent. Bodies are checked
with strict `json_params_matcher`, so a key that should be left out fails the match.
Secret checks report which secret leaked, never its value.
"""

from __future__ import annotations

import base64
import json
import uuid
from unittest import mock

import pytest
import requests
from django.core import serializers
from django.test import override_settings
from django.urls import reverse
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from runs.models import AuditEntry, EnvironmentProfile, Run, RunEvent
from runs.private_keys import normalise_private_key
from runs.service import RunRequest, start_run
from tests.factories import key_body_lines, leaks, make_profile, pem_of, run_form

NEW_URL = reverse("runs:new")
BASE = "https://app.coalescesoftware.io"
START_URL = f"{BASE}/scheduler/startRun"
TOKEN = "tok-SERVICECANARY-0123456789"
PASSWORD = "pw-SERVICECANARY-4d5e6f"
PASSPHRASE = "pp-SERVICECANARY-7a8b9c"
OAUTH_TOKEN = "tok-production-0123456789"  # the `profile` fixture's token
AuthType = EnvironmentProfile.AuthType


# -- fixtures and helpers ---------------------------------------------------------------------


def staging_profile(analysts, auth_type: str, **fields) -> EnvironmentProfile:
    """A profile with TOKEN and the SVC_LOADER user, that the analysts may run."""
    return make_profile(name=f"Staging {auth_type}", default_job_id="", default_parallelism=16,
                        snowflake_auth_type=auth_type, snowflake_username="SVC_LOADER",
                        api_token=TOKEN, groups=[analysts], **fields)


@pytest.fixture
def basic_profile(analysts) -> EnvironmentProfile:
    return staging_profile(analysts, AuthType.BASIC, snowflake_password=PASSWORD,
                           snowflake_warehouse="TRANSFORMING", snowflake_role="LOADER")


def keypair_profile(analysts, pasted: str, passphrase: str = "") -> EnvironmentProfile:
    return staging_profile(analysts, AuthType.KEYPAIR,
                           private_key=normalise_private_key(pasted, passphrase or None),
                           private_key_passphrase=passphrase)


@pytest.fixture
def plain_key_profile(analysts, rsa_key) -> EnvironmentProfile:
    return keypair_profile(analysts, pem_of(rsa_key))


@pytest.fixture
def encrypted_key_profile(analysts, rsa_key) -> EnvironmentProfile:
    return keypair_profile(analysts, pem_of(rsa_key, PASSPHRASE), PASSPHRASE)


def expect_start(coalesce, body: dict, *, token: str = TOKEN, **answer) -> None:
    """Register startRun for exactly this body and this bearer token."""
    coalesce.post(
        START_URL,
        match=[
            matchers.json_params_matcher(body),
            matchers.header_matcher({"Authorization": f"Bearer {token}"}),
        ],
        **(answer or {"json": {"runCounter": 5}}),
    )


def answer_start(coalesce, **answer) -> None:
    coalesce.post(START_URL, **answer)


def sent_details(coalesce) -> dict:
    """runDetails as it went over the wire (the matchers compare 8 == 8.0 and True == 1)."""
    return json.loads(coalesce.calls[0].request.body)["runDetails"]


def start(profile, user, **fields) -> Run:
    run, created = start_run(
        RunRequest(profile=profile, **fields),
        user=user,
        client_ip="203.0.113.7",
        submit_token=uuid.uuid4(),
    )
    assert created
    run.refresh_from_db()
    return run


def run_page(client, run: Run) -> str:
    response = client.get(run.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def basic_credentials() -> dict:
    return {
        "snowflakeAuthType": "Basic",
        "snowflakeUsername": "SVC_LOADER",
        "snowflakePassword": PASSWORD,
        "snowflakeWarehouse": "TRANSFORMING",
        "snowflakeRole": "LOADER",
    }


def keypair_body(pem: str, **credentials) -> dict:
    """The startRun body for a KeyPair profile: exactly these credentials, no others."""
    return {
        "runDetails": {"environmentID": "42", "parallelism": 16},
        "userCredentials": {"snowflakeAuthType": "KeyPair", "snowflakeUsername": "SVC_LOADER",
                            "snowflakeKeyPairKey": pem, **credentials},
    }


def oauth_body(**details) -> dict:
    return {
        "runDetails": {"environmentID": "42", "parallelism": 16, **details},
        "userCredentials": {"snowflakeAuthType": "OAuth"},
    }


def key_lines(pem: str) -> dict[str, str]:
    return {f"key line {n}": line for n, line in enumerate(key_body_lines(pem))}


def stored_rows() -> dict[str, str]:
    return {
        "Run rows": serializers.serialize("json", Run.objects.all()),
        "RunEvent rows": serializers.serialize("json", RunEvent.objects.all()),
        "audit entries": serializers.serialize("json", AuditEntry.objects.all()),
    }


# -- the body: credentials by auth type ---------------------------------------------------------


def test_it_sends_basic_credentials_with_warehouse_and_role(alice, basic_profile, coalesce):
    expect_start(coalesce, {
        "runDetails": {"environmentID": "42", "parallelism": 16},
        "userCredentials": basic_credentials(),
    })

    assert start(basic_profile, alice).status == Run.Status.STARTED


def test_it_sends_an_unencrypted_key_without_a_passphrase_key(
    alice, rsa_key, plain_key_profile, coalesce
):
    # Strict match: a "snowflakeKeyPairPass" key, even empty, would fail it.
    expect_start(coalesce, keypair_body(pem_of(rsa_key)))

    assert start(plain_key_profile, alice).status == Run.Status.STARTED


def test_it_sends_an_encrypted_key_with_its_passphrase(alice, encrypted_key_profile, coalesce):
    stored_pem = encrypted_key_profile.get_secret("private_key")
    expect_start(coalesce, keypair_body(stored_pem, snowflakeKeyPairPass=PASSPHRASE))

    assert start(encrypted_key_profile, alice).status == Run.Status.STARTED
    assert stored_pem.splitlines()[0] == "-----BEGIN ENCRYPTED PRIVATE KEY-----"


def test_it_sends_a_key_pasted_with_crlf_as_canonical_pem(alice, analysts, rsa_key, coalesce):
    profile = keypair_profile(analysts, pem_of(rsa_key).replace("\n", "\r\n"))
    # The canonical PEM is what cryptography writes: LF line endings, 64 columns.
    expect_start(coalesce, keypair_body(pem_of(rsa_key)))

    assert start(profile, alice).status == Run.Status.STARTED


def test_it_leaves_out_an_empty_warehouse_and_role(alice, basic_profile, coalesce):
    basic_profile.snowflake_warehouse = basic_profile.snowflake_role = ""
    basic_profile.save()
    credentials = basic_credentials()
    del credentials["snowflakeWarehouse"], credentials["snowflakeRole"]
    expect_start(coalesce, {
        "runDetails": {"environmentID": "42", "parallelism": 16},
        "userCredentials": credentials,
    })

    assert start(basic_profile, alice).status == Run.Status.STARTED


def test_it_sends_only_the_auth_type_for_oauth(alice, profile, coalesce):
    expect_start(coalesce, oauth_body(), token=OAUTH_TOKEN)

    assert start(profile, alice).status == Run.Status.STARTED


# -- the body: run details and parameters ---------------------------------------------------------


def test_it_sends_the_job_id_as_a_string_and_parallelism_as_an_int(alice, profile, coalesce):
    expect_start(coalesce, oauth_body(jobID="7", parallelism=8), token=OAUTH_TOKEN)

    start(profile, alice, job_id="7", parallelism=8)

    assert type(sent_details(coalesce)["parallelism"]) is int


def test_it_sends_selectors_without_a_job(alice, profile, coalesce):
    body = oauth_body(
        includeNodesSelector="{ location: STAGING }", excludeNodesSelector="{ name: X }"
    )
    expect_start(coalesce, body, token=OAUTH_TOKEN)

    start(profile, alice, include_selector="{ location: STAGING }", exclude_selector="{ name: X }")


def test_it_leaves_out_empty_optional_fields(alice, profile, coalesce):
    # No jobID, selectors, force flag or parameters key: only what is required.
    expect_start(coalesce, oauth_body(), token=OAUTH_TOKEN)

    start(profile, alice, job_id="", include_selector="", exclude_selector="", parameters={})


def test_it_sends_parameters_as_an_object_of_strings(alice, profile, coalesce):
    body = {**oauth_body(), "parameters": {"REGION": "emea", "LIMIT": "10", "EMPTY": ""}}
    expect_start(coalesce, body, token=OAUTH_TOKEN)

    start(profile, alice, parameters={"REGION": "emea", "LIMIT": "10", "EMPTY": ""})


def test_it_sends_force_only_as_true(alice, profile, coalesce):
    expect_start(coalesce, oauth_body(forceIgnoreWorkspaceStatus=True),
                 token=OAUTH_TOKEN)

    run = start(profile, alice, force=True)

    assert sent_details(coalesce)["forceIgnoreWorkspaceStatus"] is True
    assert run.force is True


# -- the run record, one test per outcome ---------------------------------------------------


def test_it_records_a_started_run(alice, alice_client, profile, coalesce):
    answer_start(coalesce, json={"runCounter": 1234})

    run = start(profile, alice)

    assert (run.status, run.run_counter, run.http_status) == ("started", 1234, None)
    assert run.run_link == f"{BASE}/runs/1234"
    assert (run.error_kind, run.error_message, run.raw_response) == ("", "", "")
    assert list(run.events.values_list("kind", flat=True)) == ["submitting", "started"]
    page = run_page(alice_client, run)
    # The outcome headline: accepted, and no status from Coalesce yet, reads Queued.
    assert '<span class="outcome outcome-queued">' in page and "</span> Queued</span>" in page
    assert '<strong class="run-counter">1234</strong>' in page
    assert f'href="{BASE}/runs/1234"' in page


def test_it_records_a_rejection_with_coalesce_s_error(alice, alice_client, profile, coalesce):
    answer_start(coalesce, status=400, json={"error": {
        "errorString": "Environment is not deployed", "errorDetail": "Deploy environment 42 first"
    }})

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind, run.error_string) == (
        "rejected", 400, "rejected", "Environment is not deployed")
    assert run.error_detail == "Deploy environment 42 first"
    assert run.raw_response == ""
    page = run_page(alice_client, run)
    assert "start: rejected by Coalesce" in page
    assert "<strong>Coalesce's error:</strong> Environment is not deployed" in page
    assert "<strong>Details:</strong> Deploy environment 42 first" in page


def test_it_records_an_unaccepted_token(alice, alice_client, profile, coalesce):
    answer_start(coalesce, status=401, json={"error": {"errorString": "Unable to authenticate"}})

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind, run.error_string) == (
        "rejected", 401, "unauthorized", "Unable to authenticate")
    page = run_page(alice_client, run)
    assert "Coalesce did not accept the access token (HTTP 401)" in page


def test_it_records_a_rate_limit(alice, alice_client, profile, coalesce):
    answer_start(coalesce, status=429, headers={"Retry-After": "7"},
                 json={"error": {"errorString": "Too many requests"}})

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind, run.error_string) == (
        "rate_limited", 429, "rate_limited", "Too many requests")
    page = run_page(alice_client, run)
    assert "start: rate limited" in page
    assert "Coalesce is limiting requests (HTTP 429)" in page
    assert "Try again in 7 s." in page


def test_it_records_a_500_html_answer_scrubbed(alice, alice_client, basic_profile, coalesce):
    answer_start(coalesce, status=500, content_type="text/html", body=(
        "<html><body><h1>Internal Server Error</h1>"
        f"<p>Authorization: Bearer {TOKEN}</p><p>password {PASSWORD}</p></body></html>"
    ))

    run = start(basic_profile, alice)

    assert (run.status, run.http_status, run.error_kind) == ("unreachable", 500, "unavailable")
    assert (run.error_string, run.error_detail) == ("", "")
    assert "<h1>Internal Server Error</h1>" in run.raw_response
    assert "[redacted]" in run.raw_response
    page = run_page(alice_client, run)
    assert "start: unreachable" in page
    assert "Coalesce is unavailable (HTTP 500)" in page
    assert "&lt;h1&gt;Internal Server Error&lt;/h1&gt;" in page
    assert leaks({"run page": page, **stored_rows()},
                 {"token": TOKEN, "password": PASSWORD}) == []


def test_it_records_a_refused_connection_as_nothing_sent(alice, alice_client, profile, coalesce):
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    answer_start(coalesce, body=requests.ConnectionError(MaxRetryError(None, START_URL, refused)))

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind) == ("unreachable", None, "connect_failed")
    assert run.run_counter is None
    page = run_page(alice_client, run)
    assert "start: unreachable" in page
    assert "connection refused. Nothing was sent, so it is safe to try again." in page


def test_it_records_a_read_timeout_as_outcome_unknown(alice, alice_client, profile, coalesce):
    answer_start(coalesce, body=requests.exceptions.ReadTimeout("read timed out"))

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind) == ("unknown", None, "timeout")
    page = run_page(alice_client, run)
    assert "Outcome unknown" in page
    assert "The run may have started: check Coalesce before starting it again." in page


def test_it_records_malformed_json_as_outcome_unknown(alice, alice_client, profile, coalesce):
    answer_start(coalesce, body='{"runCounter": ', content_type="application/json")

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind) == ("unknown", 200, "bad_response")
    assert run.raw_response == '{"runCounter": '
    page = run_page(alice_client, run)
    assert "Outcome unknown" in page
    assert "Coalesce answered HTTP 200 but the response is not JSON." in page
    assert "The run may have started" in page


def test_it_records_an_answer_without_run_counter_as_outcome_unknown(
    alice, alice_client, profile, coalesce
):
    answer_start(coalesce, json={"status": "ok"})

    run = start(profile, alice)

    assert (run.status, run.http_status, run.error_kind) == ("unknown", 200, "bad_response")
    assert run.run_counter is None
    page = run_page(alice_client, run)
    assert "Outcome unknown" in page
    assert "the response has no integer runCounter" in page


# -- secrets ---------------------------------------------------------------------------------------


def test_it_stores_the_request_body_with_secrets_masked(alice, encrypted_key_profile, coalesce):
    answer_start(coalesce, json={"runCounter": 5})

    run = start(encrypted_key_profile, alice, job_id="7")

    assert run.request_body == {
        "runDetails": {"environmentID": "42", "jobID": "7", "parallelism": 16},
        "userCredentials": {
            "snowflakeAuthType": "KeyPair",
            "snowflakeUsername": "SVC_LOADER",
            "snowflakeKeyPairKey": "[secret]",
            "snowflakeKeyPairPass": "[secret]",
        },
    }


def test_it_stores_no_basic_secret_even_when_coalesce_echoes_it(alice, basic_profile, coalesce):
    answer_start(coalesce, status=400, json={"error": {
        "errorString": f"Bad password {PASSWORD}", "errorDetail": f"token {TOKEN}"
    }})

    run = start(basic_profile, alice)

    assert run.request_body["userCredentials"]["snowflakePassword"] == "[secret]"
    assert leaks(stored_rows(), {"token": TOKEN, "password": PASSWORD}) == []


def test_it_stores_no_key_pair_secret(alice, encrypted_key_profile, coalesce):
    pem = encrypted_key_profile.get_secret("private_key")
    answer_start(coalesce, status=400, json={"error": {"errorString": f"Bad key {pem}"}})

    start(encrypted_key_profile, alice)

    secrets = {"token": TOKEN, "passphrase": PASSPHRASE, **key_lines(pem)}
    assert leaks(stored_rows(), secrets) == []


@override_settings(CREDENTIALS_ENCRYPTION_KEYS="other:" + base64.b64encode(b"k" * 32).decode())
def test_it_sends_nothing_when_credentials_cannot_be_decrypted(
    alice_client, basic_profile, coalesce
):
    # The profile's secrets were written under the test ring, which is no longer configured.
    response = alice_client.post(NEW_URL, run_form(basic_profile, parallelism="16"), follow=True)

    run = Run.objects.get()
    assert len(coalesce.calls) == 0
    assert (run.status, run.error_kind, run.http_status) == ("not_sent", "decryption", None)
    page = response.content.decode()
    assert "start: not sent" in page
    assert "API token cannot be decrypted with the configured keys, so nothing was sent" in page


# -- a crash between the two writes, and a reused form --------------------------------------


def test_it_leaves_the_run_submitting_when_the_call_crashes(alice_client, profile):
    # The exception propagates (a 500, logged with its traceback); the row stays.
    crash = mock.patch("runs.coalesce.CoalesceClient.start_run", side_effect=RuntimeError("killed"))
    with crash, pytest.raises(RuntimeError):
        alice_client.post(NEW_URL, run_form(profile, parallelism="16"))

    run = Run.objects.get()
    assert run.status == Run.Status.SUBMITTING
    assert "No answer has been recorded for this attempt" in run_page(alice_client, run)
    history = alice_client.get("/").content.decode()
    assert run.get_absolute_url() in history
    assert "outcome outcome-queued" in history and "</span> Queued</span>" in history


def test_it_returns_the_existing_run_for_a_used_submit_token(alice, profile, coalesce):
    answer_start(coalesce, json={"runCounter": 5})
    token = uuid.uuid4()
    first, _ = start_run(RunRequest(profile=profile), user=alice, client_ip=None,
                         submit_token=token)

    again, created = start_run(RunRequest(profile=profile), user=alice, client_ip=None,
                               submit_token=token)

    assert (again.pk, created) == (first.pk, False)
    assert len(coalesce.calls) == 1
    assert Run.objects.count() == 1
