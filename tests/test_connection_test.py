""""Test connection" against the real simulator: it checks the token AND the environment,
and says what it checked and what it could not."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runs import service
from tests.factories import sim_profile

pytestmark = pytest.mark.django_db


def test_a_healthy_environment_passes_both_checks(simulator):
    report = service.test_connection(sim_profile(simulator.state.base_url, "demo"))

    assert report.problem is None
    assert report.checked == ("the base URL and API token (Coalesce listed runs)",
                              "environment demo (Simulated demo) exists and this token may "
                              "read it")
    assert "Not checked: the Snowflake credentials" in report.summary()
    calls = simulator.state.calls_snapshot()
    assert calls.get("GET /api/v1/environments/{id}") == 1


def test_an_environment_that_answers_500_is_not_connected(simulator):
    # Its token works, so listing runs succeeds: only the environment check catches it.
    report = service.test_connection(sim_profile(simulator.state.base_url, "fail-http500"))

    assert report.checked == ("the base URL and API token (Coalesce listed runs)",)
    assert report.problem.startswith("environment fail-http500: ")
    assert "500" in report.problem
    assert report.summary().startswith("Checked: the base URL and API token")


def test_an_unknown_environment_is_named(simulator):
    report = service.test_connection(sim_profile(simulator.state.base_url, "missing-7"))

    assert report.problem.startswith("environment missing-7: ") and "404" in report.problem


def test_a_wrong_token_stops_before_the_environment(simulator):
    profile = sim_profile(simulator.state.base_url, "demo", api_token="wrong")

    report = service.test_connection(profile)

    assert report.checked == () and "access token" in report.problem
    assert "GET /api/v1/environments/{id}" not in simulator.state.calls_snapshot()


def test_the_admin_says_what_it_checked(admin_client, simulator):
    profile = sim_profile(simulator.state.base_url, "fail-http500", name="Broken")
    response = admin_client.post(reverse("admin:runs_environmentprofile_changelist"),
                                 {"action": "test_connection", "_selected_action": [profile.pk]},
                                 follow=True)
    page = response.content.decode()
    assert "Broken: Checked: the base URL and API token" in page
    assert "Problem: environment fail-http500:" in page and "connected" not in page.lower()
