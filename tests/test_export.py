"""The history's CSV export (runs:export): columns, escaping, formula neutralising, filters,
permissions and keyset batches.

People: alice (analyst, may run Production), admin (superuser); Staging is admin-only.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from runs import exports
from runs.models import Run
from runs.summaries import summarise
from tests import factories
from tests.cases import OUTCOME_CASES
from tests.factories import assert_redirects_to_login

URL = reverse("runs:export")
T0 = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def make_run(profile, user, **fields) -> Run:
    """A started run, created at T0 unless `fields` say otherwise."""
    return factories.make_run(profile, user, **{"created_at": T0, **fields})


def download(client, params=None) -> tuple[object, list[dict[str, str]]]:
    response = client.get(URL, params or {})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8")
    return response, list(csv.DictReader(io.StringIO(text, newline="")))


def test_it_streams_every_column_as_csv(alice_client, alice, profile):
    run = make_run(profile, alice, job_id="7", parallelism=12, force=True, run_counter=4321,
                   run_link="https://app.coalescesoftware.io/runs/4321",
                   coalesce_status="completed", coalesce_started_at=T0 + timedelta(seconds=5),
                   coalesce_ended_at=T0 + timedelta(minutes=4, seconds=17),
                   error_message="Nothing wrong")
    response, rows = download(alice_client)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="run-history-{today}.csv"')
    assert rows == [{
        "dashboard_run": str(run.pk), "requested_at": "2024-05-10T12:00:00+00:00",
        "started_by": "alice", "environment": "Production", "job_id": "7",
        "include_selector": "", "exclude_selector": "", "parallelism": "12", "force": "yes",
        "run_counter": "4321", "run_link": "https://app.coalescesoftware.io/runs/4321",
        "outcome": "Succeeded", "status": "started", "coalesce_status": "completed",
        "coalesce_started_at": "2024-05-10T12:00:05+00:00",
        "coalesce_ended_at": "2024-05-10T12:04:17+00:00", "duration_seconds": "252.0",
        "error": "Nothing wrong", "via_api_token": "",
    }]


def test_it_writes_times_in_utc_with_their_microseconds(alice_client, alice, profile):
    paris = timezone.get_fixed_timezone(120)
    make_run(profile, alice, created_at=datetime(2024, 5, 10, 14, 0, 0, 250_000, tzinfo=paris),
             coalesce_status="failed", coalesce_started_at=T0,
             coalesce_ended_at=T0 + timedelta(seconds=1, microseconds=500_000))
    _, rows = download(alice_client)
    assert rows[0]["requested_at"] == "2024-05-10T12:00:00.250000+00:00"
    assert rows[0]["coalesce_started_at"] == "2024-05-10T12:00:00+00:00"
    assert rows[0]["coalesce_ended_at"] == "2024-05-10T12:00:01.500000+00:00"
    assert rows[0]["duration_seconds"] == "1.5"


def test_it_leaves_the_duration_empty_until_the_run_ends(alice_client, alice, profile):
    make_run(profile, alice, coalesce_status="running", coalesce_started_at=T0)
    _, rows = download(alice_client)
    assert (rows[0]["coalesce_ended_at"], rows[0]["duration_seconds"]) == ("", "")


def test_it_writes_only_a_header_when_nothing_matches(alice_client, profile):
    response = alice_client.get(URL)
    text = b"".join(response.streaming_content).decode()
    assert text == ",".join(exports.CSV_HEADER) + "\r\n"


def test_it_escapes_commas_quotes_and_newlines(alice_client, alice, profile):
    message = 'Bad value "x", then\nline two\r\nand, more'
    make_run(profile, alice, include_selector='{ name: "a,b" }', error_message=message)
    response = alice_client.get(URL)
    raw = b"".join(response.streaming_content).decode()
    assert '"Bad value ""x"", then\nline two\r\nand, more"' in raw
    _, rows = download(alice_client)
    assert rows[0]["error"] == message
    assert rows[0]["include_selector"] == '{ name: "a,b" }'


def test_it_writes_utf8(alice_client, alice, profile):
    make_run(profile, alice, error_message="Übergröße ✓ 日本")
    _, rows = download(alice_client)
    assert rows[0]["error"] == "Übergröße ✓ 日本"


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)",
                                   "\t=1", "\r=1"])
def test_it_neutralises_formulas(alice_client, alice, profile, value):
    make_run(profile, alice, job_id=value[:60], include_selector=value, error_message=value)
    _, rows = download(alice_client)
    assert rows[0]["job_id"] == "'" + value[:60]
    assert rows[0]["include_selector"] == "'" + value
    assert rows[0]["error"] == "'" + value


def test_it_neutralises_formulas_in_user_names(client, admin_user, profile):
    admin_user.username = "=cmd|' /C calc'!A0"
    admin_user.save()
    client.force_login(admin_user)
    make_run(profile, admin_user)
    _, rows = download(client)
    assert rows[0]["started_by"] == "'=cmd|' /C calc'!A0"


def test_it_leaves_harmless_text_alone(alice_client, alice, profile):
    make_run(profile, alice, error_message="a = b + c - d @ e")
    _, rows = download(alice_client)
    assert rows[0]["error"] == "a = b + c - d @ e"


def test_it_applies_the_filters(client, admin_user, alice, profile, staging):
    client.force_login(admin_user)
    make_run(profile, alice)
    wanted = make_run(staging, admin_user, status=Run.Status.REJECTED, force=True)
    make_run(staging, admin_user, status=Run.Status.REJECTED)
    _, rows = download(client, {"environment": staging.pk, "outcome": "could_not_start",
                                "force": "1"})
    assert [row["dashboard_run"] for row in rows] == [str(wanted.pk)]


def test_it_exports_only_what_the_analyst_may_see(alice_client, alice, admin_user, profile,
                                                  staging):
    mine = make_run(profile, alice)
    make_run(staging, admin_user)
    _, rows = download(alice_client)
    assert [row["dashboard_run"] for row in rows] == [str(mine.pk)]


def test_it_exports_every_run_once_across_batches_with_ties(alice_client, alice, profile,
                                                             monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_BATCH_SIZE", 4)
    # 11 runs share a timestamp (with microseconds), so batch boundaries fall in the tie.
    runs = [make_run(profile, alice, created_at=T0 + timedelta(seconds=1))]
    runs += [make_run(profile, alice, created_at=T0 + timedelta(microseconds=123_456))
             for _ in range(11)]
    runs += [make_run(profile, alice, created_at=T0 - timedelta(seconds=1))]
    with CaptureQueriesContext(connection) as queries:
        _, rows = download(alice_client)
    expected = [runs[0].pk, *sorted((r.pk for r in runs[1:12]), reverse=True), runs[12].pk]
    assert [int(row["dashboard_run"]) for row in rows] == expected
    # 13 rows in batches of 4: 4 queries for the rows, each a LIMIT query.
    run_queries = [q["sql"] for q in queries if 'FROM "runs_run"' in q["sql"]
                   and "EXISTS" not in q["sql"]]
    assert len(run_queries) == 4
    assert all("LIMIT 4" in sql for sql in run_queries)


def test_it_answers_400_for_bad_filters(alice_client, profile):
    response = alice_client.get(URL, {"date_from": "2024-02-30"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()


def test_it_redirects_anonymous_users_to_login(client):
    assert_redirects_to_login(client.get(URL))


def test_it_rejects_post(alice_client):
    assert alice_client.post(URL).status_code == 405


def test_it_is_linked_from_the_history_with_the_same_filters(alice_client, alice, profile):
    make_run(profile, alice)
    html = alice_client.get(reverse("runs:list"), {"outcome": "running"}).content.decode()
    assert 'href="/history/export.csv?outcome=running">Export CSV</a>' in html




@pytest.mark.parametrize(("status", "coalesce_status", "unfollowed", "words"), OUTCOME_CASES)
def test_it_writes_the_outcome_in_the_pages_words(alice_client, alice, profile, status,
                                                  coalesce_status, unfollowed, words):
    make_run(profile, alice, status=status, coalesce_status=coalesce_status,
             stopped_following_at=T0 if unfollowed else None)
    _, rows = download(alice_client)
    assert rows[0]["outcome"] == words


def test_it_explains_a_failure_in_coalesce_in_the_error_column(alice_client, alice, profile):
    run = make_run(profile, alice, coalesce_status="failed", run_counter=77)
    run.results = [
        {"node_id": "n1", "name": "STG_ORDERS", "status": "completed"},
        {"node_id": "n2", "name": "FCT_ORDERS", "status": "failed",
         "error": "invalid identifier 'AMOUNT'\nline 2"},
        {"node_id": "n3", "name": "FCT_REVENUE", "status": "failed", "error": "upstream failed"},
    ]
    summarise(run, "Run failed")
    run.save()
    _, rows = download(alice_client)
    assert rows[0]["error"] == ("2 of 3 nodes failed: FCT_ORDERS, FCT_REVENUE. "
                                "invalid identifier 'AMOUNT'")
