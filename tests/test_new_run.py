"""Tests for the run form (new_run) and the run page (run_detail).

Coalesce is mocked with `responses` (the `coalesce` fixture): a call to any URL that is not
registered fails, so `len(coalesce.calls) == 0` proves nothing was sent.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from responses import matchers

from runs.models import Run
from tests.factories import grant, make_run, run_form

NEW_URL = reverse("runs:new")
START_URL = "https://app.coalescesoftware.io/scheduler/startRun"
FORCE_LABEL = "Force refresh even if the last deployment failed"


def started(coalesce, run_counter: int = 5, match=()) -> None:
    coalesce.post(START_URL, json={"runCounter": run_counter}, match=list(match))


def assert_refused(response, coalesce, message: str, *typed: str) -> None:
    """The form came back with `message` and everything typed; nothing was sent."""
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    for value in typed:
        assert value in page
    assert len(coalesce.calls) == 0
    assert not Run.objects.exists()


# -- the form -----------------------------------------------------------------------------------


def test_it_shows_the_form(alice_client, profile):
    page = alice_client.get(NEW_URL).content.decode()

    assert "<h1>Start a refresh run</h1>" in page
    for label in ("Environment", "Job ID", "Include nodes", "Exclude nodes", "Parallelism",
                  "Refresh the entire environment"):
        assert f"{label}</label>" in page
    assert "Parameter name" in page
    assert "Parameter value" in page
    assert "Production</option>" in page
    assert 'name="parallelism" value="16"' in page
    assert 'data-busy-text="Starting run…">Start run</button>' in page


def test_it_hides_the_force_fields_without_the_permission(alice_client, profile):
    page = alice_client.get(NEW_URL).content.decode()

    assert FORCE_LABEL not in page
    assert "Confirm environment name" not in page


def test_it_shows_the_force_fields_with_the_permission(alice, alice_client, profile):
    grant(alice, "force_run")

    page = alice_client.get(NEW_URL).content.decode()

    assert f"{FORCE_LABEL}</label>" in page
    assert "Confirm environment name</label>" in page


def test_it_fills_the_environment_s_defaults(alice_client, profile):
    response = alice_client.post(NEW_URL, {"environment": profile.pk, "job_id": "12",
                                           "parallelism": "3", "form_action": "defaults"})

    page = response.content.decode()
    assert 'name="job_id" value="7"' in page
    assert 'name="parallelism" value="8"' in page
    assert f'<option value="{profile.pk}" selected>Production</option>' in page
    assert not Run.objects.exists()  # reshaping the form starts nothing


def test_a_link_to_an_environment_opens_with_its_defaults(alice_client, profile):
    page = alice_client.get(NEW_URL, {"environment": profile.pk}).content.decode()

    assert 'name="job_id" value="7"' in page and 'name="parallelism" value="8"' in page


def test_it_keeps_a_typed_job_id_when_a_row_is_added(alice_client, profile):
    page = alice_client.post(NEW_URL, {"environment": profile.pk, "job_id": "12",
                                       "parallelism": "", "form_action": "add_param"})

    assert 'name="job_id" value="12"' in page.content.decode()


def test_it_returns_only_the_form_to_htmx(alice_client, profile):
    response = alice_client.post(
        NEW_URL, {"environment": profile.pk, "form_action": "defaults"},
        headers={"HX-Request": "true"},
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<form id="run-form"')
    assert "<html" not in page
    assert 'name="job_id" value="7"' in page


def test_it_adds_a_parameter_row(alice_client, profile):
    response = alice_client.post(
        NEW_URL, {"param_name": ["REGION"], "param_value": ["emea"], "form_action": "add_param"}
    )

    page = response.content.decode()
    assert 'name="param_name" value="REGION"' in page
    assert 'name="param_value" value="emea"' in page
    assert page.count('name="param_name"') == 2


def test_it_removes_a_parameter_row(alice_client, profile):
    response = alice_client.post(NEW_URL, {
        "param_name": ["REGION", "LIMIT"], "param_value": ["emea", "10"],
        "form_action": "remove_param:0",
    })

    page = response.content.decode()
    assert 'value="REGION"' not in page
    assert 'name="param_name" value="LIMIT"' in page
    assert page.count('name="param_name"') == 1


def test_a_post_without_its_token_starts_nothing_and_says_why(alice_client, profile):
    data = {"environment": profile.pk, "job_id": "7", "parallelism": "4"}

    page = alice_client.post(NEW_URL, data).content.decode()

    assert "This page was out of date, so nothing was started" in page
    assert not Run.objects.exists()
    # The re-rendered form carries a fresh token, so pressing Start run again works.
    assert re.search(r'name="submit_token" value="[0-9a-f-]{36}"', page)


def test_it_rejects_other_methods(alice_client, profile):
    assert alice_client.delete(NEW_URL).status_code == 405


# -- who may use it ---------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_log_in(client, profile):
    response = client.get(NEW_URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_sends_an_anonymous_post_to_log_in(client, profile, coalesce):
    response = client.post(NEW_URL, run_form(profile, refresh_all="on"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert len(coalesce.calls) == 0


def test_it_hides_an_environment_bob_may_not_run(client, bob, profile):
    client.force_login(bob)

    assert client.get(NEW_URL, {"environment": profile.pk}).status_code == 404


def test_it_refuses_bob_s_post_for_that_environment(client, bob, profile, coalesce):
    client.force_login(bob)

    assert client.post(NEW_URL, run_form(profile)).status_code == 404
    assert len(coalesce.calls) == 0
    assert not Run.objects.exists()


def test_it_refuses_a_forged_force_without_the_permission(alice_client, profile, coalesce):
    data = run_form(profile, force="on", confirm_name="Production")

    assert alice_client.post(NEW_URL, data).status_code == 403
    assert len(coalesce.calls) == 0
    assert not Run.objects.exists()


def test_it_starts_a_forced_run_with_the_permission(alice, alice_client, profile, coalesce):
    grant(alice, "force_run")
    started(coalesce, match=[matchers.json_params_matcher({
        "runDetails": {"environmentID": "42", "jobID": "7", "parallelism": 8,
                       "forceIgnoreWorkspaceStatus": True},
        "userCredentials": {"snowflakeAuthType": "OAuth"},
    })])

    response = alice_client.post(
        NEW_URL, run_form(profile, force="on", confirm_name="Production"), follow=True
    )

    assert Run.objects.get().force is True
    assert "Yes: forced despite a failed deployment" in response.content.decode()


def test_it_requires_the_csrf_token(alice, profile, coalesce):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.post(NEW_URL, run_form(profile)).status_code == 403
    assert len(coalesce.calls) == 0


# -- starting a run -----------------------------------------------------------------------------


def test_it_starts_a_run_and_shows_it(alice_client, profile, coalesce):
    started(coalesce, run_counter=1234)

    response = alice_client.post(NEW_URL, run_form(profile), follow=True)

    run = Run.objects.get()
    assert response.redirect_chain == [(run.get_absolute_url(), 302)]
    page = response.content.decode()
    # The outcome headline: accepted, and no status from Coalesce yet, reads Queued.
    assert '<span class="outcome outcome-queued">' in page and "</span> Queued</span>" in page
    assert '<strong class="run-counter">1234</strong>' in page


def test_it_sends_what_the_form_says(alice_client, profile, coalesce):
    # Selectors are trimmed, empty parameter rows dropped, jobID a string, parallelism an int.
    started(coalesce, match=[matchers.json_params_matcher({
        "runDetails": {"environmentID": "42", "jobID": "12", "parallelism": 64,
                       "includeNodesSelector": "{ location: STAGING }"},
        "userCredentials": {"snowflakeAuthType": "OAuth"},
        "parameters": {"REGION": "emea", "LIMIT": "10"},
    })])

    alice_client.post(NEW_URL, run_form(
        profile, job_id=" 12 ", parallelism="64", include_selector="  { location: STAGING }\n",
        param_name=["REGION", "", "LIMIT"], param_value=["emea", "", "10"],
    ))

    assert Run.objects.get().status == Run.Status.STARTED


def test_it_sends_a_run_of_the_entire_environment_once_confirmed(alice_client, profile, coalesce):
    started(coalesce, match=[matchers.json_params_matcher({
        "runDetails": {"environmentID": "42", "parallelism": 8},
        "userCredentials": {"snowflakeAuthType": "OAuth"},
    })])

    alice_client.post(NEW_URL, run_form(profile, job_id="", refresh_all="on"))

    assert Run.objects.get().targets_everything


def test_it_redirects_htmx_to_the_run_page(alice_client, profile, coalesce):
    started(coalesce)

    response = alice_client.post(NEW_URL, run_form(profile), headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == Run.objects.get().get_absolute_url()


def test_it_starts_once_for_a_resubmitted_form(alice_client, profile, coalesce):
    started(coalesce)
    data = run_form(profile)
    alice_client.post(NEW_URL, data)

    response = alice_client.post(NEW_URL, data, follow=True)

    run = Run.objects.get()
    assert len(coalesce.calls) == 1
    assert response.redirect_chain == [(run.get_absolute_url(), 302)]
    assert "This form was already submitted; here is the run it started." in (
        response.content.decode()
    )


def test_it_warns_about_or_inside_braces_before_sending(alice_client, profile, coalesce):
    form = run_form(profile, job_id="", include_selector="{ name: A || name: B }")

    response = alice_client.post(NEW_URL, form)

    page = response.content.decode()
    assert "inside one pair of braces" in page
    assert "Start anyway</button>" in page
    assert len(coalesce.calls) == 0  # nothing sent before the analyst confirms
    assert not Run.objects.exists()


def test_start_anyway_sends_the_warned_selector(alice_client, profile, coalesce):
    started(coalesce)
    form = run_form(profile, job_id="", include_selector="{ name: A || name: B }")
    page = alice_client.post(NEW_URL, form).content.decode()
    warned = re.search(r'name="start_anyway" value="(\w+)"', page).group(1)

    alice_client.post(NEW_URL, {**form, "start_anyway": warned})

    assert Run.objects.get().include_selector == "{ name: A || name: B }"


def test_start_anyway_does_not_cover_a_selector_changed_since(alice_client, profile, coalesce):
    form = run_form(profile, job_id="", include_selector="{ name: A || name: B }")
    page = alice_client.post(NEW_URL, form).content.decode()
    warned = re.search(r'name="start_anyway" value="(\w+)"', page).group(1)

    response = alice_client.post(NEW_URL, {**form, "start_anyway": warned,
                                           "include_selector": "{ name: C || name: D }"})

    assert "Start anyway</button>" in response.content.decode()
    assert len(coalesce.calls) == 0


def test_it_records_the_client_address(alice_client, profile, coalesce):
    started(coalesce)

    alice_client.post(NEW_URL, run_form(profile), REMOTE_ADDR="203.0.113.7")

    assert Run.objects.get().client_ip == "203.0.113.7"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_it_records_the_address_the_proxy_saw(alice_client, profile, coalesce):
    started(coalesce)

    alice_client.post(
        NEW_URL, run_form(profile), REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9",  # the first entry is client-written
    )

    assert Run.objects.get().client_ip == "203.0.113.9"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_it_records_no_address_when_the_proxy_sends_junk(alice_client, profile, coalesce):
    started(coalesce)

    alice_client.post(NEW_URL, run_form(profile), HTTP_X_FORWARDED_FOR="unknown")

    run = Run.objects.get()
    assert (run.status, run.client_ip) == ("started", None)


# -- bad input: a message by the field, the typed values kept, nothing sent --------------------


def test_it_refuses_a_job_id_that_is_not_a_number(alice_client, profile, coalesce):
    response = alice_client.post(NEW_URL, run_form(
        profile, job_id="nightly", include_selector="{ name: DIM_X }"
    ))

    assert_refused(response, coalesce, "A job ID is a number, as shown in Coalesce (e.g. 3).",
                   'value="nightly"', "{ name: DIM_X }</textarea>")


@pytest.mark.parametrize(
    ("typed", "message"),
    [("0", "Parallelism must be a whole number from 1 to 1024."),
     ("1025", "Parallelism must be a whole number from 1 to 1024.")],
)
def test_it_refuses_parallelism_out_of_range(alice_client, profile, coalesce, typed, message):
    response = alice_client.post(NEW_URL, run_form(profile, parallelism=typed))

    assert_refused(response, coalesce, message, f'name="parallelism" value="{typed}"')
    assert "Ensure this value" not in response.content.decode()  # no stock Django wording


def test_it_asks_to_confirm_a_run_of_the_entire_environment(alice_client, profile, coalesce):
    response = alice_client.post(NEW_URL, run_form(
        profile, job_id="", parallelism="32", param_name=["REGION"], param_value=["emea"]
    ))

    assert_refused(response, coalesce, "tick “Refresh the entire environment” to confirm",
                   'name="parallelism" value="32"', 'value="REGION"', 'value="emea"')


def test_it_refuses_a_forced_run_without_the_environment_name(
    alice, alice_client, profile, coalesce
):
    grant(alice, "force_run")

    response = alice_client.post(NEW_URL, run_form(profile, force="on", confirm_name="Prod"))

    assert_refused(response, coalesce,
                   "Type the environment name “Production” exactly to force a refresh.",
                   'value="Prod"', 'name="force" id="id_force" checked')


def test_it_refuses_duplicate_parameter_names(alice_client, profile, coalesce):
    response = alice_client.post(NEW_URL, run_form(
        profile, param_name=["REGION", "REGION"], param_value=["emea", "apac"]
    ))

    assert_refused(response, coalesce, "“REGION” is already set above",
                   'value="emea"', 'value="apac"')
    # Beside its row, and in the summary with a link to that row.
    page = response.content.decode()
    assert '<tr id="param-row-1" class="has-error">' in page
    assert '<a href="#param-row-1">Parameter row 2: “REGION” is already set above' in page


def test_it_refuses_a_parameter_value_without_a_name(alice_client, profile, coalesce):
    response = alice_client.post(NEW_URL, run_form(
        profile, param_name=["REGION", " "], param_value=["emea", "apac"]
    ))

    assert_refused(response, coalesce, "Give this parameter a name.",
                   'value="REGION"', 'value="apac"')


def test_it_returns_the_refused_form_to_htmx(alice_client, profile, coalesce):
    response = alice_client.post(
        NEW_URL, run_form(profile, job_id="nightly"), headers={"HX-Request": "true"}
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<form id="run-form"')
    assert "<html" not in page
    assert_refused(response, coalesce, "A job ID is a number", 'value="nightly"')


# -- the run page -------------------------------------------------------------------------------


def test_it_shows_the_run_page_to_alice(alice, alice_client, profile):
    run = make_run(profile, alice, run_counter=99)

    response = alice_client.get(run.get_absolute_url())

    assert f"Run {run.number} on Production" in response.content.decode()


def test_it_hides_a_run_on_an_environment_bob_may_not_run(client, alice, bob, profile):
    run = make_run(profile, alice, run_counter=99)
    client.force_login(bob)

    assert client.get(run.get_absolute_url()).status_code == 404


def test_it_shows_any_run_to_an_auditor(client, alice, carol, profile):
    run = make_run(profile, alice, run_counter=99)
    client.force_login(carol)

    response = client.get(run.get_absolute_url())

    assert f"Run {run.number} on Production" in response.content.decode()


def test_it_sends_anonymous_visitors_of_a_run_to_log_in(client, alice, profile):
    run = make_run(profile, alice, run_counter=99)

    response = client.get(run.get_absolute_url())

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_notify_me_is_on_the_form_ticked_by_my_settings_and_kept_on_reshape(alice, alice_client,
                                                                            profile, coalesce):
    from runs.notifications.models import NotificationPreference, RunSubscription

    box = 'name="notify"'
    page = alice_client.get(NEW_URL).content.decode()
    assert "Notify me when this run ends" in page
    assert re.search(r'<input[^>]*name="notify"[^>]*checked', page) is None

    NotificationPreference.objects.create(user=alice, notify_by_default=True)
    page = alice_client.get(NEW_URL).content.decode()
    assert re.search(r'<input[^>]*name="notify"[^>]*checked', page)

    # Adding a parameter row keeps the box as the person left it (unticked here).
    reshaped = alice_client.post(NEW_URL, {**run_form(profile), "form_action": "add_param"})
    assert box in reshaped.content.decode()
    assert re.search(r'<input[^>]*name="notify"[^>]*checked', reshaped.content.decode()) is None

    started(coalesce, run_counter=55)
    alice_client.post(NEW_URL, {**run_form(profile), "notify": "on"})
    assert RunSubscription.objects.filter(run=Run.objects.get(), user=alice).exists()
