"""The run lifecycle, defined once on the model, and the service as the only door to Coalesce."""

from __future__ import annotations

import itertools
import uuid

import pytest
import responses
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs import service, sweep, tasks
from runs.coalesce import TOKEN_UNREADABLE
from runs.models import TERMINAL, CoalesceStatus, EnvironmentProfile, Outcome, Run

BASE = "https://app.coalescesoftware.io"
START_STATES = [choice for choice, _ in Run.Status.choices]
COALESCE_STATES = ["", *(choice for choice, _ in CoalesceStatus.choices), "someNewStatus"]


def _run(profile, user, **fields) -> Run:
    values = {"submit_token": uuid.uuid4(), "environment_id": profile.environment_id,
              "parallelism": 8, "request_body": {}, "status": Run.Status.STARTED,
              "run_counter": 31, **fields}
    return Run.objects.create(profile=profile, created_by=user, **values)


@pytest.mark.django_db
def test_the_active_queryset_and_the_property_agree_on_every_state(profile, alice):
    combinations = list(itertools.product(START_STATES, COALESCE_STATES, [None, timezone.now()]))
    runs = [_run(profile, alice, status=status, coalesce_status=coalesce, run_counter=None,
                 stopped_following_at=stopped)
            for status, coalesce, stopped in combinations]

    active_pks = set(Run.objects.active().values_list("pk", flat=True))

    assert {run.pk for run in runs if run.is_active} == active_pks
    # The rule itself, spelled out once more in plain terms:
    for run in runs:
        expected = (run.status in ("started", "submitting", "unknown")
                    and run.coalesce_status not in TERMINAL
                    and run.stopped_following_at is None)
        assert run.is_active == expected, (run.status, run.coalesce_status)


@pytest.mark.django_db
def test_a_run_the_sweep_gave_up_on_is_not_active(profile, alice):
    run = _run(profile, alice, coalesce_status="running", stopped_following_at=timezone.now())

    assert not run.is_active
    assert not Run.objects.active().exists()


def test_visibility_of_runs_follows_the_profiles_one_may_see(profile, alice, bob, admin_user):
    mine = _run(profile, alice)
    auditor = bob
    auditor.user_permissions.add(Permission.objects.get(codename="view_run"))

    assert list(Run.objects.visible_to(alice)) == [mine]
    assert list(EnvironmentProfile.objects.visible_to(alice)) == [profile]
    nobody = type(bob).objects.create_user("carol")
    assert not Run.objects.visible_to(nobody).exists()
    assert not EnvironmentProfile.objects.runnable_by(nobody).exists()
    # An auditor sees every run but may run nothing.
    auditor = type(bob).objects.get(pk=auditor.pk)  # a fresh permission cache
    assert list(Run.objects.visible_to(auditor)) == [mine]
    assert not EnvironmentProfile.objects.runnable_by(auditor).exists()
    assert list(Run.objects.visible_to(admin_user)) == [mine]


# --- the service is the only door -------------------------------------------------------------

@responses.activate
def test_the_service_fetches_results_and_returns_none(profile, alice):
    run = _run(profile, alice, coalesce_status="running")
    responses.get(f"{BASE}/api/v1/runs/31/results", json={"data": [
        {"nodeID": "n1", "nodeName": "STG_ORDERS", "queryResults": [
            {"name": "Create", "success": True, "isRunning": False}]}]})

    assert service.refresh_results(run) is None

    run.refresh_from_db()
    assert [node["name"] for node in run.results] == ["STG_ORDERS"]


@pytest.mark.django_db
def test_an_unreadable_token_is_one_message_everywhere(profile, alice, settings):
    run = _run(profile, alice, coalesce_status="running")
    settings.CREDENTIALS_ENCRYPTION_KEYS = "other:" + "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="

    with responses.RequestsMock():  # nothing may be sent
        assert service.refresh_results(run) == TOKEN_UNREADABLE
        assert service.test_connection(profile).problem == TOKEN_UNREADABLE
        report = sweep.sweep()
    assert report.errors == [f"{profile.name}: {TOKEN_UNREADABLE}"]


@pytest.mark.django_db
def test_a_base_url_no_longer_allowed_is_refused_at_call_time(profile, alice):
    # Saved when the host was allowed; the operator has since removed it from the list.
    EnvironmentProfile.objects.filter(pk=profile.pk).update(base_url="https://coalesce.evil.test")
    profile.refresh_from_db()

    with responses.RequestsMock():  # nothing may be sent
        problem = service.test_connection(profile).problem

    assert "not an official Coalesce host" in problem
    assert "Nothing was sent" in problem


@pytest.mark.django_db
def test_opening_a_run_page_queues_no_sweep(alice_client, profile, alice):
    run = _run(profile, alice, coalesce_status="running")

    response = alice_client.get(run.get_absolute_url())

    assert response.status_code == 200
    assert not DBTaskResult.objects.exists()


def test_the_sweep_chain_survives_a_sweep_that_raised(profile, alice, monkeypatch, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    _run(profile, alice, coalesce_status="running")

    def broken_sweep(**kwargs):
        raise RuntimeError("an odd answer")

    monkeypatch.setattr(sweep, "sweep", broken_sweep)
    with pytest.raises(RuntimeError):
        tasks.sweep_runs.call()

    assert DBTaskResult.objects.filter(task_path=tasks.sweep_runs.module_path).count() == 1


@responses.activate
def test_one_environments_bad_answer_does_not_stop_the_others(profile, alice, analysts):
    other = EnvironmentProfile(name="Staging", base_url=BASE, environment_id="43",
                               snowflake_auth_type=EnvironmentProfile.AuthType.OAUTH)
    other.set_secret("api_token", "tok-staging-0123456789", by="admin")
    other.save()
    _run(profile, alice, coalesce_status="running", run_counter=31)
    healthy = _run(other, alice, coalesce_status="running", run_counter=32)
    now = timezone.now().isoformat()

    def listing(request):
        environment = request.params["environmentID"]
        if environment == "42":  # a start time no database can hold
            item = {"id": 31, "runStatus": "running", "runStartTime": "9999-12-31T23:59:59-14:00",
                    "runType": "refresh", "environmentID": "42"}
            return 200, {}, __import__("json").dumps({"data": [item]})
        item = {"id": 32, "runStatus": "completed", "runStartTime": now, "runEndTime": now,
                "runType": "refresh", "environmentID": "43"}
        return 200, {}, __import__("json").dumps({"data": [item]})

    responses.add_callback(responses.GET, f"{BASE}/api/v1/runs", callback=listing)
    responses.get(f"{BASE}/api/v1/runs/32/results", json={"data": []})

    report = sweep.sweep()

    healthy.refresh_from_db()
    assert healthy.coalesce_status == "completed"
    assert report.environments == 2


@pytest.mark.django_db
def test_an_auditor_cannot_fetch_results_or_cancel(client, profile, alice, bob):
    run = _run(profile, alice, coalesce_status="running")
    for codename in ("view_run", "cancel_run"):
        bob.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(bob)

    with responses.RequestsMock():  # nothing may be sent
        assert client.get(run.get_absolute_url()).status_code == 200
        fetch = client.post(reverse("runs:refresh_results", args=[run.pk]))
        cancel = client.post(reverse("runs:cancel", args=[run.pk]))

    assert (fetch.status_code, cancel.status_code) == (404, 404)


def test_a_history_page_showing_a_run_no_longer_followed_does_not_poll(alice_client, profile,
                                                                       alice):
    followed = _run(profile, alice, coalesce_status="running")
    statuses = reverse("runs:statuses")

    page = alice_client.get(reverse("runs:list")).content.decode()
    assert f'hx-get="{statuses}?ids={followed.pk}"' in page  # a moving run is polled

    followed.stopped_following_at = timezone.now()  # the sweep gave up on it
    followed.save()
    page = alice_client.get(reverse("runs:list")).content.decode()
    assert statuses not in page
    # And a poll already under way is told to stop (286), not to go on.
    assert alice_client.get(f"{statuses}?ids={followed.pk}").status_code == 286


# --- one outcome per run ------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "coalesce_status", "stopped", "expected"), [
    ("submitting", "", False, "Queued"),
    ("submitting", "", True, "Outcome unknown"),
    ("unknown", "", False, "Outcome unknown"),
    ("unknown", "", True, "Outcome unknown"),
    ("started", "", False, "Queued"),
    ("started", "waitingToRun", False, "Queued"),
    ("started", "initializing", False, "Running"),
    ("started", "rendering", False, "Running"),
    ("started", "running", False, "Running"),
    ("started", "someNewStatus", False, "Running"),
    ("started", "running", True, "No longer followed"),
    ("started", "waitingToRun", True, "No longer followed"),
    ("started", "completed", False, "Succeeded"),
    ("started", "completed", True, "Succeeded"),
    ("started", "failed", False, "Failed"),
    ("started", "canceled", False, "Cancelled"),
    ("rejected", "", False, "Couldn't start"),
    ("rate_limited", "", False, "Couldn't start"),
    ("unreachable", "", False, "Couldn't start"),
    ("not_sent", "", False, "Couldn't start"),
])
def test_each_start_state_and_coalesce_status_has_one_outcome(status, coalesce_status, stopped,
                                                              expected):
    run = Run(status=status, coalesce_status=coalesce_status,
              stopped_following_at=timezone.now() if stopped else None)

    assert run.outcome.label == expected


def test_every_combination_has_an_outcome_and_couldnt_start_says_why():
    for status, coalesce, stopped in itertools.product(START_STATES, COALESCE_STATES,
                                                       [None, timezone.now()]):
        run = Run(status=status, coalesce_status=coalesce, stopped_following_at=stopped)
        assert run.outcome in Outcome.values
        assert bool(run.outcome_reason) == (run.outcome == Outcome.COULD_NOT_START)
