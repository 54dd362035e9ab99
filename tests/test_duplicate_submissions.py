"""One form posted many times at once starts exactly one run.

A real server (live_server), a real Coalesce simulator and real concurrent transactions:
only PostgreSQL runs these, because SQLite serialises writers and would prove nothing.
Run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from runs.models import EnvironmentProfile, Run
from tests import factories

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serialises writers, so no race can happen",
    ),
    pytest.mark.django_db(transaction=True),
]

SUBMITTERS = 12
ALREADY_SUBMITTED = "This form was already submitted; here is the run it started."


@pytest.fixture
def sim_profile(analysts, simulator) -> EnvironmentProfile:
    return factories.sim_profile(simulator.state.base_url, "42", name="Simulated",
                                 default_job_id="7", groups=[analysts])


@pytest.fixture
def browser(settings, live_server, alice) -> Iterator[requests.Session]:
    """alice, logged in through the login page like a browser."""
    # The live server speaks plain http, so Secure cookies would never come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    with requests.Session() as session:
        yield _logged_in(session, live_server)


def _logged_in(session: requests.Session, live_server) -> requests.Session:
    login_url = live_server.url + "/accounts/login/"
    page = session.get(login_url, timeout=10)
    response = session.post(login_url, timeout=10, data={
        "username": "alice", "password": "alice-password",
        "csrfmiddlewaretoken": hidden_value(page.text, "csrfmiddlewaretoken"),
    })
    assert response.ok and "Log out alice" in response.text
    return session


def hidden_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} in the page"
    return match.group(1)


def test_it_starts_one_run_for_many_identical_posts(live_server, browser, sim_profile, simulator):
    new_url = live_server.url + "/runs/new/"
    page = browser.get(new_url, params={"environment": sim_profile.pk}, timeout=10)
    form = {
        "csrfmiddlewaretoken": hidden_value(page.text, "csrfmiddlewaretoken"),
        "submit_token": hidden_value(page.text, "submit_token"),
        "environment": str(sim_profile.pk),
        "job_id": "7",
        "parallelism": "16",
    }
    barrier = threading.Barrier(SUBMITTERS)

    def submit(_: int) -> requests.Response:
        # One browser tab each, with the same cookies; closed so the server's thread (and
        # its database connection) ends with the test.
        with requests.Session() as tab:
            tab.cookies.update(browser.cookies)
            barrier.wait(timeout=10)
            return tab.post(new_url, data=form, timeout=30)

    with ThreadPoolExecutor(SUBMITTERS) as pool:
        answers = list(pool.map(submit, range(SUBMITTERS)))

    run = Run.objects.get()
    assert simulator.state.calls_snapshot().get("POST /scheduler/startRun") == 1
    assert {(a.status_code, a.url) for a in answers} == {
        (200, live_server.url + run.get_absolute_url())
    }
    assert sum(ALREADY_SUBMITTED in a.text for a in answers) == SUBMITTERS - 1
    assert run.status == Run.Status.STARTED
