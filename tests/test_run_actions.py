"""The run page while a run moves: live status, node results, cancel and rerun."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import responses
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from responses import matchers

from runs.models import AuditEntry, Run
from tests.cases import FAILED_RESULTS
from tests.factories import grant, make_run

pytestmark = pytest.mark.django_db

BASE = "https://app.coalescesoftware.io"


def _run(profile, user, *, counter=31, coalesce_status="running", **fields) -> Run:
    """Run 31 of job 7, running in Coalesce unless told otherwise."""
    return make_run(profile, user, run_counter=counter, coalesce_status=coalesce_status,
                    job_id="7", **fields)


def _cancellable_run(profile, alice, *, org="org-1", **fields) -> Run:
    """A `_run` that alice may cancel, on `profile` with Coalesce organisation `org`."""
    grant(alice, "cancel_run")
    profile.organization_id = org
    profile.save()
    return _run(profile, alice, **fields)




# --- live status ---


def test_the_page_polls_while_the_run_moves(alice_client, alice, profile):
    run = _run(profile, alice)
    page = alice_client.get(run.get_absolute_url()).content.decode()
    assert f'hx-get="{reverse("runs:status", args=[run.pk])}"' in page
    assert 'hx-trigger="every 2s"' in page and 'hx-swap="innerHTML"' in page


def test_the_status_fragment_keeps_polling_while_active(alice_client, alice, profile):
    run = _run(profile, alice)
    response = alice_client.get(reverse("runs:status", args=[run.pk]),
                                headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    # The content of the polled element only: the element itself stays in the page.
    assert 'id="run-live"' not in body and "<html" not in body
    assert '<span class="outcome-shape" aria-hidden="true">▶</span> Running</span>' in body


@pytest.mark.parametrize("status", ["completed", "failed", "canceled"])
def test_polling_stops_once_the_run_is_terminal(alice_client, alice, profile, status):
    run = _run(profile, alice, coalesce_status=status)
    response = alice_client.get(reverse("runs:status", args=[run.pk]))
    assert response.status_code == 286  # htmx stops polling
    word = {"completed": "Succeeded", "failed": "Failed", "canceled": "Cancelled"}[status]
    assert f"</span> {word}</span>" in response.content.decode()
    assert "hx-trigger" not in response.content.decode()


def test_the_status_of_another_teams_run_is_404(client, bob, alice, profile):
    run = _run(profile, alice)
    client.force_login(bob)
    assert client.get(reverse("runs:status", args=[run.pk])).status_code == 404


def test_anonymous_users_are_sent_to_log_in(client, alice, profile):
    run = _run(profile, alice)
    response = client.get(reverse("runs:status", args=[run.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- node results ---


def test_failed_nodes_come_first_with_their_sql_on_demand(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="failed", results=FAILED_RESULTS)
    page = alice_client.get(run.get_absolute_url()).content.decode()
    assert page.index("FCT_BROKEN") < page.index("STG_OK")
    assert "invalid identifier &#x27;AMOUNT&#x27;" in page
    assert "<summary>Failing SQL</summary><pre>select amount from x</pre>" in page


def test_odd_stored_results_are_shown_not_crashed_on(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="completed",
               results=[{"name": "X", "status": "someNewState"}, "junk", {}])
    page = alice_client.get(run.get_absolute_url()).content.decode()
    assert "someNewState" in page


@responses.activate
def test_results_can_be_fetched_on_demand(alice_client, alice, profile):
    run = _run(profile, alice)
    responses.get(f"{BASE}/api/v1/runs/31/results", json={"data": [
        {"nodeID": "n", "name": "STG_LIVE", "isRunning": True, "queryResults": []}]})
    response = alice_client.post(reverse("runs:refresh_results", args=[run.pk]), follow=True)
    assert "STG_LIVE" in response.content.decode()
    run.refresh_from_db()
    assert run.results[0]["name"] == "STG_LIVE"


# --- cancel ---


def test_cancel_needs_its_own_permission(alice_client, alice, profile):
    run = _run(profile, alice)
    assert alice_client.get(reverse("runs:cancel", args=[run.pk])).status_code == 403
    assert alice_client.post(reverse("runs:cancel", args=[run.pk])).status_code == 403
    assert "Cancel run" not in alice_client.get(run.get_absolute_url()).content.decode()


def test_cancel_asks_for_confirmation_showing_what_stops(alice_client, alice, profile):
    run = _cancellable_run(profile, alice)
    page = alice_client.get(reverse("runs:cancel", args=[run.pk])).content.decode()
    assert f"Cancel run {run.number}?" in page
    assert "Job 7" in page and "Production" in page and "Cancel run 31</button>" in page


@responses.activate
def test_it_cancels_and_records_who(alice_client, alice, profile):
    run = _cancellable_run(profile, alice)
    responses.post(f"{BASE}/scheduler/cancelRun", status=204, match=[
        matchers.json_params_matcher({"runID": 31, "orgID": "org-1", "environmentID": "42"})])
    response = alice_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    assert "Coalesce is cancelling run 31." in response.content.decode()
    assert run.events.filter(kind="cancel_requested", actor="alice").exists()
    # The request and its outcome are two audit entries, in that order.
    assert list(_run_audit_actions()) == ["run_cancel_requested", "run_cancelled"]
    # A second click sends nothing more.
    response = alice_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    assert "Coalesce already accepted a cancellation of this run." in response.content.decode()
    assert len(responses.calls) == 1


@responses.activate
def test_a_cancel_that_failed_can_be_tried_again(alice_client, alice, profile):
    grant(alice, "cancel_run")
    profile.organization_id = "org-1"
    profile.save()
    run = _run(profile, alice)
    responses.post(f"{BASE}/scheduler/cancelRun", status=503)
    responses.post(f"{BASE}/scheduler/cancelRun", status=204)
    url = reverse("runs:cancel", args=[run.pk])

    alice_client.post(url)
    assert alice_client.get(url).status_code == 200  # the confirmation page, not a refusal
    response = alice_client.post(url, follow=True)

    assert "Coalesce is cancelling run 31." in response.content.decode()
    assert len(responses.calls) == 2
    assert list(_run_audit_actions()) == ["run_cancel_requested", "run_cancel_failed",
                                  "run_cancel_requested", "run_cancelled"]


@responses.activate
def test_a_cancel_names_the_environment_the_run_was_started_in(alice_client, alice, profile):
    grant(alice, "cancel_run")
    run = _run(profile, alice)
    profile.organization_id = "org-1"
    profile.environment_id = "99"  # edited after the run started
    profile.save()
    responses.post(f"{BASE}/scheduler/cancelRun", status=204, match=[
        matchers.json_params_matcher({"runID": 31, "orgID": "org-1", "environmentID": "42"})])

    alice_client.post(reverse("runs:cancel", args=[run.pk]))

    assert len(responses.calls) == 1


@pytest.mark.parametrize(("status", "org", "message"), [
    ("completed", "org-1", "This run is already completed; there is nothing left to cancel."),
    ("running", "", "needs the profile&#x27;s Coalesce organisation ID"),
])
def test_cancel_is_refused_when_the_state_does_not_allow_it(alice_client, alice, profile,
                                                            status, org, message):
    run = _cancellable_run(profile, alice, org=org, coalesce_status=status)
    with responses.RequestsMock():  # nothing may be sent
        response = alice_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    assert message in response.content.decode()


@responses.activate
def test_a_refused_cancel_shows_coalesces_reason(alice_client, alice, profile):
    run = _cancellable_run(profile, alice)
    responses.post(f"{BASE}/scheduler/cancelRun", status=400,
                   json={"error": {"errorString": "Run is not running"}})
    response = alice_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    assert "Run is not running" in response.content.decode()
    assert run.events.filter(kind="cancel_failed").exists()


def _run_audit_actions() -> list[str]:
    entries = AuditEntry.objects.filter(actor="alice", action__startswith="run_")
    return list(entries.order_by("seq").values_list("action", flat=True))


# --- rerun ---


def test_rerun_is_refused_for_a_run_that_did_not_fail(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="completed")
    with responses.RequestsMock():
        response = alice_client.post(reverse("runs:rerun", args=[run.pk]), follow=True)
    assert "Only a failed run can be rerun" in response.content.decode()
    assert Run.objects.count() == 1


def test_rerun_of_another_teams_run_is_404(client, bob, alice, profile):
    run = _run(profile, alice, coalesce_status="failed")
    client.force_login(bob)
    assert client.post(reverse("runs:rerun", args=[run.pk])).status_code == 404


@responses.activate
def test_it_reruns_the_failed_nodes_as_a_linked_run(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="failed", parameters={"REGION": "emea"})
    responses.post(f"{BASE}/scheduler/rerun", json={"runCounter": 32}, match=[
        matchers.json_params_matcher({
            "runDetails": {"runID": "31"},
            "userCredentials": {"snowflakeAuthType": "OAuth"},
            "parameters": {"REGION": "apac"},
        }),
        matchers.header_matcher({"Authorization": "Bearer tok-production-0123456789"}),
    ])
    form = alice_client.get(reverse("runs:rerun", args=[run.pk])).content.decode()
    assert 'name="param_name" value="REGION"' in form  # prefilled from the original
    token = str(uuid.uuid4())
    data = {"submit_token": token, "param_name": "REGION", "param_value": "apac"}
    response = alice_client.post(reverse("runs:rerun", args=[run.pk]), data, follow=True)
    rerun = Run.objects.get(rerun_of=run)
    assert (rerun.run_counter, rerun.status) == (32, Run.Status.STARTED)
    page = response.content.decode()
    assert f"Rerun of <a href=\"{run.get_absolute_url()}\">run {run.number}</a>" in page
    original = alice_client.get(run.get_absolute_url()).content.decode()
    assert f"Rerun as <a href=\"{rerun.get_absolute_url()}\">run {rerun.number}</a>" in original
    assert rerun.request_body["userCredentials"] == {"snowflakeAuthType": "OAuth"}
    assert AuditEntry.objects.filter(action="run_rerun", details__rerun_of=run.pk).exists()
    # The same form posted again starts nothing new.
    alice_client.post(reverse("runs:rerun", args=[run.pk]), data)
    assert Run.objects.filter(rerun_of=run).count() == 1 and len(responses.calls) == 1


def test_rerun_parameters_are_checked(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="failed")
    data = {"submit_token": str(uuid.uuid4()), "param_name": ["A", "A"],
            "param_value": ["1", "2"]}
    with responses.RequestsMock():
        page = alice_client.post(reverse("runs:rerun", args=[run.pk]), data).content.decode()
    assert "parameter names must be unique" in page
    assert not Run.objects.filter(rerun_of=run).exists()


def test_fetching_results_with_an_undecryptable_token_says_so(alice_client, alice, profile,
                                                              settings):
    from runs.encryption import generate_key

    run = _run(profile, alice)
    settings.CREDENTIALS_ENCRYPTION_KEYS = generate_key("other")  # the stored key is gone
    with responses.RequestsMock():  # nothing may be sent
        response = alice_client.post(reverse("runs:refresh_results", args=[run.pk]),
                                     follow=True)
    assert "API token cannot be decrypted" in response.content.decode()


def test_an_unchanged_run_answers_304_to_the_next_poll(alice_client, alice, profile):
    run = _run(profile, alice)
    url = reverse("runs:status", args=[run.pk])
    first = alice_client.get(url)
    etag = first["ETag"]

    again = alice_client.get(url, headers={"If-None-Match": etag})
    run.log("coalesce_running", "Coalesce reports running.")
    changed = alice_client.get(url, headers={"If-None-Match": etag})

    assert again.status_code == 304 and again.content == b""
    assert changed.status_code == 200 and "Coalesce reports running." in changed.content.decode()


def test_a_poll_tells_the_sweep_that_the_page_is_open(alice_client, alice, profile):
    run = _run(profile, alice)
    before = timezone.now()

    alice_client.get(reverse("runs:status", args=[run.pk]))

    run.refresh_from_db()
    assert run.watched_until > before + timedelta(seconds=10)


def test_a_finished_run_is_not_marked_watched(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="completed")
    alice_client.get(reverse("runs:status", args=[run.pk]))
    run.refresh_from_db()
    assert run.watched_until is None


@pytest.mark.parametrize("coalesce_status", ["running", "completed", "failed"])
def test_every_run_page_offers_run_again_to_who_may_run_it(alice_client, alice, profile,
                                                           coalesce_status):
    run = _run(profile, alice, coalesce_status=coalesce_status)
    page = alice_client.get(run.get_absolute_url()).content.decode()
    assert f'href="/runs/new/?from_run={run.pk}">Run again</a>' in page


def test_an_auditor_sees_no_run_again(client, carol, alice, profile):
    run = _run(profile, alice, coalesce_status="failed")
    client.force_login(carol)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Run again" not in page and "Failed" in page


@pytest.mark.parametrize("who", ["alice", "carol", "admin_user"])
def test_an_unchanged_poll_costs_one_query_after_the_login(client, who, alice, profile,
                                                           django_assert_num_queries, request):
    run = _run(profile, alice)
    client.force_login(request.getfixturevalue(who))
    url = reverse("runs:status", args=[run.pk])
    etag = client.get(url)["ETag"]  # this poll also renewed "watched until"
    # The session, its user, then the run's change marker with the visibility rule.
    with django_assert_num_queries(3):
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
def test_on_postgresql_the_poll_prepares_its_three_queries_once_per_connection(client, alice,
                                                                            profile):
    run = _run(profile, alice)
    client.force_login(alice)
    url = reverse("runs:status", args=[run.pk])
    for _ in range(2):
        client.get(url)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)

    # The query log still shows each statement with its values, as for every other query.
    assert any(f'"runs_run"."id" = {run.pk}' in (q["sql"] or "") for q in queries)
    assert all(q["sql"] for q in queries)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    # The session, its user and the run's marker; every other query keeps client-side
    # binding.
    assert len(prepared) == 3
    assert [sum(table in sql for sql in prepared)
            for table in ('"django_session"', 'FROM "auth_user"', 'FROM "runs_run"')] == [1, 1, 1]


def test_a_poll_for_an_invisible_run_is_404_also_with_an_etag(client, bob, alice, profile):
    run = _run(profile, alice)
    client.force_login(alice)
    etag = client.get(reverse("runs:status", args=[run.pk]))["ETag"]
    client.force_login(bob)
    response = client.get(reverse("runs:status", args=[run.pk]), headers={"If-None-Match": etag})
    assert response.status_code == 404


def test_the_poll_sees_exactly_the_runs_the_history_shows(client, alice, bob, carol,
                                                          admin_user, profile, staging):
    # staging: alice's group may not run it; bob's group gets view_run through a group.
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(Permission.objects.get(codename="view_run"))
    bob.groups.add(auditors)
    dave = User.objects.create_user("dave", password="dave-password")
    runs = [_run(profile, alice, counter=1), _run(staging, admin_user, counter=2)]
    for user in (alice, bob, carol, admin_user, dave):
        client.force_login(user)
        polled = {run.pk for run in runs
                  if client.get(reverse("runs:status", args=[run.pk])).status_code == 200}
        assert polled == set(Run.objects.visible_to(user).values_list("pk", flat=True)), user
