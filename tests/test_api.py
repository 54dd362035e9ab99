"""The JSON API: the run form's rules, the pages' permissions, JSON errors, tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from runs.models import ApiToken, AuditEntry, Run
from tests.api_helpers import call, make_token
from tests.cases import FAILED_RESULTS
from tests.factories import grant, make_run, sim_profile

pytestmark = pytest.mark.django_db
BASE = "https://app.coalescesoftware.io"


@pytest.fixture
def sim(simulator, analysts):
    return sim_profile(simulator.base_url, "env-api", groups=[analysts])


def start(client, token, environment, **fields):
    return call(client, "post", "/runs", token, {"environment": environment.pk, **fields})


# --- starting ---


def test_it_starts_a_run_and_says_which_token(client, alice, sim, simulator):
    token = make_token(alice, name="nightly CI")
    response = start(client, token, sim, job_id="3", notify=True)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["via_token"] == "nightly CI"
    assert body["started_by"] == "alice"
    assert body["run_counter"] is not None and body["outcome"] in ("queued", "running")
    run = Run.objects.get(pk=body["id"])
    assert run.via_token_name == "nightly CI"
    assert "via API token nightly CI" in run.events.first().message
    entry = AuditEntry.objects.get(action=AuditEntry.Action.RUN_STARTED)
    assert entry.details["via_token"] == "nightly CI"
    assert body["url"].endswith(f"/runs/{run.pk}/")
    assert run.subscriptions.get().user == alice  # "notify": the owner hears at the end


def test_a_retried_request_with_the_same_idempotency_key_starts_one_run(client, alice, sim):
    token = make_token(alice)
    other = call(client, "post", "/runs", token, {"environment": sim.pk, "job_id": "3"},
                 **{"Idempotency-Key": "build-42"})
    first = call(client, "post", "/runs", token, {"environment": sim.pk, "job_id": "3"},
                 **{"Idempotency-Key": "build-43"})
    retried = call(client, "post", "/runs", token, {"environment": sim.pk, "job_id": "3"},
                   **{"Idempotency-Key": "build-43"})
    assert first.status_code == 201 and retried.status_code == 200
    assert retried.json()["id"] == first.json()["id"]
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert Run.objects.count() == 2


def test_the_form_rules_apply_the_whole_environment_needs_confirming(client, alice, profile):
    token = make_token(alice)
    with responses.RequestsMock():  # nothing may be sent
        response = start(client, token, profile, job_id="")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid"
    assert "Refresh the entire environment" in body["errors"]["refresh_all"][0]
    assert Run.objects.count() == 0


def test_the_size_limits_apply(client, alice, profile):
    token = make_token(alice)
    with responses.RequestsMock():
        response = start(client, token, profile, job_id="7", parallelism=100000)
    assert response.status_code == 422
    assert "parallelism" in response.json()["errors"]


def test_a_parameter_without_a_name_is_a_422_naming_it(client, alice, profile):
    token = make_token(alice)
    with responses.RequestsMock():
        response = start(client, token, profile, job_id="7", parameters={"A": "1", "": "x"})
    assert response.status_code == 422
    assert response.json()["errors"]["parameters"] == ["Parameter 2: Give this parameter a name."]


def test_selector_warnings_need_start_anyway(client, alice, sim, simulator):
    token = make_token(alice)
    selector = "{ name: A || name: B }"
    warned = start(client, token, sim, include_selector=selector)
    assert warned.status_code == 422 and warned.json()["code"] == "selector_warnings"
    assert "include_selector" in warned.json()["errors"] and Run.objects.count() == 0
    started = start(client, token, sim, include_selector=selector, start_anyway=True)
    assert started.status_code == 201


def test_forcing_needs_the_permission_and_the_name(client, alice, profile):
    token = make_token(alice)
    with responses.RequestsMock():
        refused = start(client, token, profile, job_id="7", force=True,
                        confirm_name=profile.name)
        grant(alice, "force_run")
        unconfirmed = start(client, token, profile, job_id="7", force=True, confirm_name="prod")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert unconfirmed.status_code == 422
    assert "Production" in unconfirmed.json()["errors"]["confirm_name"][0]


def test_an_environment_you_may_not_run_is_404(client, bob, profile):
    token = make_token(bob)
    with responses.RequestsMock():
        response = start(client, token, profile, job_id="7")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": response.json()["message"]}


# --- tokens: who may call ---


def test_it_refuses_calls_without_a_usable_token(client, alice, profile):
    expired = make_token(alice, name="old", expires_at=timezone.now() - timedelta(days=1))
    revoked = make_token(alice, name="gone")
    ApiToken.objects.filter(name="gone").update(revoked_at=timezone.now())
    for token in (None, "crd_not-a-real-token", expired, revoked, "Basic abc"):
        response = call(client, "get", "/runs", token)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_read_only_token_cannot_start(client, alice, profile):
    token = make_token(alice, scopes=[ApiToken.Scope.READ])
    with responses.RequestsMock():
        response = start(client, token, profile, job_id="7")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_the_token_records_when_it_was_used(client, alice):
    token = make_token(alice)
    call(client, "get", "/runs", token)
    assert ApiToken.objects.get().last_used_at is not None


def test_it_throttles_each_token_with_retry_after(client, alice, settings):
    settings.API_REQUESTS_PER_MINUTE = 2
    token, other = make_token(alice, name="busy"), make_token(alice, name="quiet")
    answers = [call(client, "get", "/runs", token).status_code for _ in range(3)]
    assert answers[:2] == [200, 200] and answers[2] == 429
    response = call(client, "get", "/runs", token)
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert call(client, "get", "/runs", other).status_code == 200


# --- reading ---


def test_it_lists_runs_in_cursor_pages_with_the_history_filters(client, alice, carol, profile,
                                                                 staging):
    for _ in range(55):
        make_run(profile, alice)
    make_run(staging, carol)
    token = make_token(alice)
    first = call(client, "get", "/runs", token).json()
    assert len(first["runs"]) == 50 and first["older_cursor"]
    second = call(client, "get", f"/runs?cursor={first['older_cursor']}", token).json()
    assert len(second["runs"]) == 5 and second["older_cursor"] is None
    assert {r["environment"] for r in first["runs"] + second["runs"]} == {"Production"}
    auditor = make_token(carol)
    everything = call(client, "get", "/runs", auditor).json()
    assert everything["runs"][0]["environment"] == "Staging"
    filtered = call(client, "get", f"/runs?environment={staging.pk}", auditor).json()
    assert [r["environment"] for r in filtered["runs"]] == ["Staging"]


def test_bad_filters_are_a_json_422(client, alice):
    token = make_token(alice)
    for query in ("cursor=nonsense!", "date_from=2024-02-01&date_to=2024-01-01",
                  "date_from=yesterday", "outcome=bogus"):
        response = call(client, "get", f"/runs?{query}", token)
        assert response.status_code == 422, query
        assert response.json()["code"] == "invalid" and response.json()["message"]


def test_it_reads_one_run_with_nodes_and_timeline(client, alice, bob, profile):
    run = make_run(profile, alice, run_counter=31, coalesce_status="failed",
                   results=FAILED_RESULTS)
    run.log("started", "Coalesce accepted the run: runCounter 31.")
    body = call(client, "get", f"/runs/{run.pk}", make_token(alice)).json()
    assert body["outcome"] == "failed" and body["finished"] is True
    assert [n["name"] for n in body["nodes"]] == ["FCT_BROKEN", "STG_OK"]
    assert body["nodes"][0]["error"] == "invalid identifier 'AMOUNT'"
    assert body["timeline"][0]["kind"] == "started"
    hidden = call(client, "get", f"/runs/{run.pk}", make_token(bob))
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"


# --- cancel and rerun ---


def test_cancel_needs_the_permission_then_asks_coalesce(client, alice, profile):
    profile.organization_id = "org-1"
    profile.save()
    run = make_run(profile, alice, run_counter=31, coalesce_status="running")
    token = make_token(alice)
    with responses.RequestsMock():
        refused = call(client, "post", f"/runs/{run.pk}/cancel", token)
    assert refused.status_code == 403
    grant(alice, "cancel_run")
    with responses.RequestsMock() as mock:
        mock.post(f"{BASE}/scheduler/cancelRun", status=204)
        response = call(client, "post", f"/runs/{run.pk}/cancel", token)
    assert response.status_code == 202
    assert response.json()["timeline"][-1]["kind"] == "cancel_accepted"
    again = call(client, "post", f"/runs/{run.pk}/cancel", token)
    assert again.status_code == 409 and again.json()["code"] == "not_cancellable"


def test_it_reruns_a_failed_run(client, alice, profile):
    run = make_run(profile, alice, run_counter=31, coalesce_status="failed", job_id="7",
                   parameters={"REGION": "emea"})
    token = make_token(alice, name="retry bot")
    with responses.RequestsMock() as mock:
        mock.post(f"{BASE}/scheduler/rerun", json={"runCounter": 32})
        response = call(client, "post", f"/runs/{run.pk}/rerun", token, {},
                        **{"Idempotency-Key": "r1"})
        retried = call(client, "post", f"/runs/{run.pk}/rerun", token, {},
                       **{"Idempotency-Key": "r1"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rerun_of"] == run.pk and body["parameters"] == {"REGION": "emea"}
    assert body["via_token"] == "retry bot"
    assert retried.status_code == 200 and retried.json()["id"] == body["id"]
    with responses.RequestsMock() as mock:  # the same key on a start is another request
        mock.post(f"{BASE}/scheduler/startRun", json={"runCounter": 33})
        started = call(client, "post", "/runs", token, {"environment": profile.pk,
                                                        "job_id": "7"}, **{"Idempotency-Key": "r1"})
    assert started.status_code == 201 and started.json()["id"] != body["id"]
    completed = make_run(profile, alice, run_counter=40, coalesce_status="completed")
    refused = call(client, "post", f"/runs/{completed.pk}/rerun", token, {})
    assert refused.status_code == 409 and refused.json()["code"] == "not_rerunnable"


def test_an_unknown_address_or_method_is_a_json_error(client, alice):
    token = make_token(alice)
    missing = call(client, "get", "/nothing-here", token)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = call(client, "delete", "/runs", token)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert "GET" in wrong["Allow"]


# --- the description ---


def test_it_serves_the_openapi_description_and_a_docs_page(client, alice):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/cancel",
            "/api/v1/runs/{run_id}/rerun"} <= set(schema["paths"])
    client.force_login(alice)
    page = client.get("/api/v1/docs/").content.decode()
    assert "POST /api/v1/runs" in page and "<script" not in page.split("</head>")[1]
