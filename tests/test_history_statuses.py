"""The history's live status column: one request refreshes every moving run on the page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runs.models import Run
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def _run(profile, user, *, coalesce_status="") -> Run:
    return make_run(profile, user, run_counter=1, coalesce_status=coalesce_status)


def test_the_page_polls_once_for_all_moving_runs(alice_client, alice, profile):
    moving = [_run(profile, alice, coalesce_status="running") for _ in range(3)]
    _run(profile, alice, coalesce_status="completed")
    page = alice_client.get(reverse("runs:list")).content.decode()
    ids = ",".join(str(r.pk) for r in reversed(moving))
    assert page.count('hx-trigger="every 5s"') == 1  # one poller, not one per row
    assert f'{reverse("runs:statuses")}?ids={ids}' in page


def test_a_page_with_nothing_moving_does_not_poll(alice_client, alice, profile):
    _run(profile, alice, coalesce_status="failed")
    assert "every 5s" not in alice_client.get(reverse("runs:list")).content.decode()


def test_it_answers_with_out_of_band_status_cells(alice_client, alice, profile):
    first = _run(profile, alice, coalesce_status="running")
    second = _run(profile, alice, coalesce_status="completed")
    response = alice_client.get(reverse("runs:statuses"),
                                {"ids": f"{first.pk},{second.pk}"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f'<span id="run-status-{first.pk}" hx-swap-oob="true">' in body
    assert f'<span id="run-status-{second.pk}" hx-swap-oob="true">' in body
    assert "Succeeded" in body and "Running" in body
    # The poller comes back with only the runs still moving.
    assert f'?ids={first.pk}"' in body


def test_polling_stops_when_nothing_moves_any_more(alice_client, alice, profile):
    run = _run(profile, alice, coalesce_status="canceled")
    response = alice_client.get(reverse("runs:statuses"), {"ids": str(run.pk)})
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()


def test_it_leaves_out_runs_the_user_may_not_see(client, bob, alice, profile):
    run = _run(profile, alice, coalesce_status="running")
    client.force_login(bob)
    body = client.get(reverse("runs:statuses"), {"ids": str(run.pk)}).content.decode()
    assert f"run-status-{run.pk}" not in body


def test_it_rejects_garbage_ids(alice_client):
    assert alice_client.get(reverse("runs:statuses"), {"ids": "1,x"}).status_code == 400
