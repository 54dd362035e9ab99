"""The history's charts (runs:charts): runs per day by outcome per environment as inline
SVG, their numbers as tables, and the success rate and average duration.

A small known data set on Production (alice's) and Staging (admin-only), 1-3 May 2024.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from runs import charts
from runs.charts import build_charts
from runs.models import Run, RunCount
from tests import factories
from tests.factories import assert_redirects_to_login

URL = reverse("runs:charts")
RANGE = {"date_from": "2024-05-01", "date_to": "2024-05-03"}
HTMX = {"HX-Request": "true"}


def at(day: int, hour: int) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=UTC) if day else datetime(2024, 4, 30, hour,
                                                                         tzinfo=UTC)


def make_run(profile, user, created_at, **fields) -> Run:
    return factories.make_run(profile, user, created_at=created_at, **fields)


def completed(created_at: datetime, seconds: int) -> dict:
    return {"coalesce_status": "completed", "coalesce_started_at": created_at,
            "coalesce_ended_at": created_at + timedelta(seconds=seconds)}


@pytest.fixture
def known(alice, admin_user, profile, staging) -> None:
    make_run(profile, alice, at(1, 10), **completed(at(1, 10), 60))
    make_run(profile, alice, at(1, 11), **completed(at(1, 11), 180))
    make_run(profile, alice, at(1, 12), status=Run.Status.REJECTED)
    make_run(profile, alice, at(2, 9), coalesce_status="failed", coalesce_started_at=at(2, 9),
             coalesce_ended_at=at(2, 9) + timedelta(seconds=30))  # not in the average
    make_run(profile, alice, at(2, 10), status=Run.Status.UNKNOWN)
    make_run(profile, alice, at(0, 23), **completed(at(0, 23), 999))  # before the range
    make_run(staging, admin_user, at(3, 8), coalesce_status="running")


def charts_html(client, params=RANGE) -> str:
    response = client.get(URL, params, headers=HTMX)
    assert response.status_code == 200
    return response.content.decode()


def table_rows(html: str, caption_start: str) -> list[list[str]]:
    """The cells of the table whose caption or summary starts with `caption_start`."""
    table = re.search(rf"{re.escape(caption_start)}.*?<tbody>(.*?)</tbody>", html, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in
             re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def test_it_summarises_each_environment(alice_client, known):
    html = charts_html(alice_client)
    assert "Runs per day, 2024-05-01 to 2024-05-03" in html
    # Runs, succeeded, failed, cancelled, couldn't start, unknown, still going, rate over
    # finished runs (2 of 4: the unknown one is not finished), average duration.
    assert table_rows(html, "<caption>Per environment") == [
        ["Production", "5", "2", "1", "0", "1", "1", "0", "50%", "2 min 00 s"]]


def test_it_gives_each_chart_s_numbers_as_a_table(alice_client, known):
    html = charts_html(alice_client)
    assert "<summary>Runs per day on Production as a table</summary>" in html
    assert table_rows(html, "<summary>Runs per day on Production") == [
        ["2024-05-01", "2", "0", "0", "1", "0", "0", "3"],
        ["2024-05-02", "0", "1", "0", "0", "1", "0", "2"],
        ["2024-05-03", "0", "0", "0", "0", "0", "0", "0"],
    ]


def test_it_draws_stacked_bars_to_scale(alice_client, known):
    html = charts_html(alice_client)
    svg = re.search(r'<svg class="run-chart-svg".*?</svg>', html, re.S).group(0)
    # 3 days over 588 units: slots of 196, bars 80% wide; the tallest day (3 runs) fills
    # the 134-unit plot, so 2 runs are 89.33 high.
    assert ('<rect class="chart-segment" x="63.6" y="54.67" width="156.8" height="89.33" '
            'fill="url(#chart-fill-succeeded)"/>') in svg
    assert ('<rect class="chart-segment" x="63.6" y="10.0" width="156.8" height="44.67" '
            'fill="url(#chart-fill-could_not_start)"/>') in svg
    assert 'x="259.6" y="99.33" width="156.8" height="44.67" fill="url(#chart-fill-failed)"' in svg
    assert 'x="259.6" y="54.67" width="156.8" height="44.67" fill="url(#chart-fill-other)"' in svg
    assert svg.count("<rect") == 4  # no rectangle for the empty day
    assert ("<title>2024-05-01: 3 runs (2 succeeded, 0 failed, 0 cancelled, 1 couldn&#x27;t "
            "start, 0 unknown or no longer followed, 0 still going)</title>") in svg
    assert 'dominant-baseline="hanging">3</text>' in svg  # the y axis's maximum


def test_it_is_readable_without_colour(alice_client, known):
    html = charts_html(alice_client)
    svg = re.search(r'<svg class="run-chart-svg".*?</svg>', html, re.S).group(0)
    assert 'role="img"' in svg
    labelledby = re.search(r'aria-labelledby="([^"]+)"', svg).group(1).split()
    for element_id in labelledby:
        assert f'id="{element_id}"' in svg
    assert "<title id=" in svg and "<desc id=" in svg
    assert ("5 runs on Production from 2024-05-01 to 2024-05-03: 2 succeeded, 1 failed, "
            "0 cancelled, 1 couldn&#x27;t start, 1 unknown or no longer followed, 0 still going. "
            "Success rate 50% of finished runs; average duration of succeeded runs 2 min 00 s."
            ) in svg
    # Each outcome has its own pattern (not only a colour) and a text label in the legend.
    assert '<pattern id="chart-fill-failed"' in html and "rotate(45)" in html
    patterns = re.findall(r'<pattern id="chart-fill-[^"]+".*?</pattern>', html, re.S)
    assert len(patterns) == len(set(patterns)) == 6  # six different fills
    legend = re.search(r'<ul class="chart-legend".*?</ul>', html, re.S).group(0)
    for label in ("Succeeded", "Failed", "Cancelled", "Couldn&#x27;t start",
                  "Unknown or no longer followed", "Still going"):
        assert label in legend
    assert legend.count('fill="url(#chart-fill-') == 6
    assert "2024-05-01" in html and "May 1" in svg and "May 3" in svg


def test_it_charts_only_what_the_analyst_may_see(alice_client, known):
    assert "Staging" not in charts_html(alice_client)


def test_it_charts_every_environment_for_a_superuser(admin_client, known):
    rows = table_rows(charts_html(admin_client), "<caption>Per environment")
    # Staging's one run is still going: no success rate yet, rather than 100%.
    assert rows == [["Production", "5", "2", "1", "0", "1", "1", "0", "50%", "2 min 00 s"],
                    ["Staging", "1", "0", "0", "0", "0", "0", "1", "—", "—"]]


def test_it_applies_the_other_filters(admin_client, known, profile):
    html = charts_html(admin_client, {**RANGE, "outcome": "succeeded"})
    assert table_rows(html, "<caption>Per environment") == [
        ["Production", "2", "2", "0", "0", "0", "0", "0", "100%", "2 min 00 s"]]
    html = charts_html(admin_client, {**RANGE, "environment": profile.pk})
    assert "Staging" not in html


def test_it_reads_the_kept_counts_not_the_runs(alice_client, known):
    with CaptureQueriesContext(connection) as queries:
        charts_html(alice_client)
    counted = [q["sql"] for q in queries if '"runs_runcount"' in q["sql"]]
    assert len(counted) == 1
    assert not any('FROM "runs_run"' in q["sql"] for q in queries)


def test_it_counts_the_runs_in_the_database_for_other_filters(admin_client, admin_user,
                                                              known):
    with CaptureQueriesContext(connection) as queries:
        charts_html(admin_client, {**RANGE, "user": admin_user.pk})
    grouped = [q["sql"] for q in queries if "GROUP BY" in q["sql"] and "runs_run" in q["sql"]]
    assert len(grouped) == 2  # runs per day and part, durations
    assert all("COUNT(" in sql for sql in grouped)


def test_it_defaults_to_the_last_30_days(alice_client, alice, profile):
    today = timezone.localdate()
    noon = timezone.make_aware(datetime.combine(today, datetime.min.time())) + timedelta(hours=12)
    make_run(profile, alice, noon)
    make_run(profile, alice, noon - timedelta(days=29))
    make_run(profile, alice, noon - timedelta(days=30))  # one day too old
    html = charts_html(alice_client, {})
    start = today - timedelta(days=29)
    assert f"Runs per day, {start:%Y-%m-%d} to {today:%Y-%m-%d}" in html
    assert table_rows(html, "<caption>Per environment")[0][:2] == ["Production", "2"]
    assert len(table_rows(html, "<summary>Runs per day on Production")) == 30


def test_it_caps_a_long_range_to_its_last_92_days(alice_client, alice, profile):
    make_run(profile, alice, datetime(2024, 1, 1, 12, tzinfo=UTC))
    make_run(profile, alice, datetime(2024, 12, 31, 12, tzinfo=UTC))
    html = charts_html(alice_client, {"date_from": "2024-01-01", "date_to": "2024-12-31"})
    assert "Runs per day, 2024-10-01 to 2024-12-31" in html
    assert "the last 92 days of the selected range" in html
    assert table_rows(html, "<caption>Per environment")[0][:2] == ["Production", "1"]


def test_it_says_when_there_are_no_runs(alice_client, profile):
    assert "No runs in this range." in charts_html(alice_client, RANGE)


def test_it_is_loaded_by_the_history_page_and_linked_without_javascript(alice_client, known):
    html = alice_client.get(reverse("runs:list"), RANGE).content.decode()
    section = re.search(r'<section id="history-charts"[^>]*>', html).group(0)
    assert 'hx-get="/history/charts/"' in section
    assert 'hx-include="#history-filters"' in section
    assert 'hx-trigger="load, change from:#history-filters' in section
    assert 'href="/history/charts/?date_from=2024-05-01&amp;date_to=2024-05-03"' in html


def test_it_renders_the_history_page_with_the_charts_without_htmx(alice_client, known):
    response = alice_client.get(URL, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Run history</h1>" in html
    assert '<svg class="run-chart-svg"' in html
    assert 'id="run-rows"' in html
    assert 'hx-trigger="change from:#history-filters' in html  # no second load


def test_it_answers_400_for_bad_filters(alice_client, profile):
    response = alice_client.get(URL, {"date_to": "31/05/2024"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()


def test_it_explains_bad_filters_to_htmx_with_200(alice_client, profile):
    response = alice_client.get(URL, {"date_to": "31/05/2024"}, headers=HTMX)
    assert response.status_code == 200  # htmx 2 swaps only 2xx answers
    assert "The charts need valid filters" in response.content.decode()


def test_it_redirects_anonymous_users_to_login(client):
    assert_redirects_to_login(client.get(URL))


def test_it_rejects_post(alice_client):
    assert alice_client.post(URL).status_code == 405


@pytest.mark.parametrize(("status", "coalesce_status", "unfollowed", "expected"), [
    ("started", "", False, charts.GOING_KEY),  # queued: not a success yet
    ("started", "running", False, charts.GOING_KEY),
    ("submitting", "", False, charts.GOING_KEY),
    ("started", "completed", False, charts.OK),
    ("started", "failed", False, charts.FAILED),
    ("started", "canceled", False, charts.CANCELLED),
    ("rejected", "", False, charts.NOT_STARTED),
    ("unreachable", "", False, charts.NOT_STARTED),
    ("rate_limited", "", False, charts.NOT_STARTED),
    ("not_sent", "", False, charts.NOT_STARTED),
    ("unknown", "", False, charts.OTHER),
    ("started", "running", True, charts.OTHER),  # no longer followed
    ("started", "completed", True, charts.OK),
])
def test_it_counts_each_outcome_in_its_part(status, coalesce_status, unfollowed, expected):
    assert charts.bucket(status, coalesce_status, unfollowed) == expected


def test_it_renders_the_partial_from_plain_data():
    start = date(2024, 5, 1)
    counts = [(1, "Prod", start, charts.OK, 4),
              (1, "Prod", date(2024, 5, 9), charts.GOING_KEY, 7)]  # outside: ignored
    durations = [(1, 4 * 3600.0, 4)]
    result = build_charts(start, date(2024, 5, 2), False, counts, durations)
    html = render_to_string("runs/run_list.html#history-charts", {"charts": result})
    assert table_rows(html, "<caption>Per environment") == [
        ["Prod", "4", "4", "0", "0", "0", "0", "0", "100%", "1 h 00 min"]]
    assert 'height="134.0" fill="url(#chart-fill-succeeded)"' in html


# --- the kept counts (runs.counts) agree with the runs, whatever writes them ---


def scanned(user_runs) -> dict:
    """(profile, local day, chart part) -> runs, counted from the runs themselves."""
    totals: dict = {}
    for run in user_runs:
        key = (run.profile_id, (timezone.localdate(run.created_at) - date(1970, 1, 1)).days,
               charts.bucket(run.status, run.coalesce_status,
                             run.stopped_following_at is not None))
        totals[key] = totals.get(key, 0) + 1
    return totals


def kept() -> dict:
    return {(c.profile_id, c.day, c.bucket): c.n for c in RunCount.objects.filter(n__gt=0)}


@pytest.mark.django_db(transaction=True)
def test_the_counts_follow_every_kind_of_write(alice, profile, staging):
    from tests.cases import OUTCOME_CASES

    runs = [make_run(profile, alice, at(1, 10), status=status, coalesce_status=cs,
                     stopped_following_at=at(1, 11) if unfollowed else None)
            for status, cs, unfollowed, _ in OUTCOME_CASES]
    assert kept() == scanned(Run.objects.all())
    # save(update_fields), bulk_update (the sweep), update() and a move to another day,
    # another environment and delete.
    runs[0].status = "started"
    runs[0].coalesce_status = "failed"
    runs[0].save(update_fields=["status", "coalesce_status"])
    for run in runs[7:10]:
        run.coalesce_status = "completed"
    Run.objects.bulk_update(runs[7:10], ["coalesce_status"])
    Run.objects.filter(pk=runs[11].pk).update(stopped_following_at=at(2, 1))
    Run.objects.filter(pk=runs[12].pk).update(created_at=at(3, 5), profile=staging)
    Run.objects.filter(pk=runs[13].pk).delete()
    assert kept() == scanned(Run.objects.all())


@pytest.fixture
def site_zone(settings, request):
    """Sets TIME_ZONE to the test's zone and counts by its days, as migrate would; and
    back to the test settings' zone afterwards."""
    from runs import counts

    before = settings.TIME_ZONE
    settings.TIME_ZONE = request.param
    counts.rebuild(connection, request.param)
    yield request.param
    settings.TIME_ZONE = before
    counts.rebuild(connection, before)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("site_zone", ["UTC", "America/New_York", "Europe/Berlin",
                                       "Asia/Kolkata", "Pacific/Chatham"], indirect=True)
def test_the_charts_from_the_counts_match_the_charts_from_the_runs(admin_user, known, alice,
                                                                    profile, site_zone):
    admin = admin_user
    # Around local midnights (and New York's change to summer time on 10 March).
    for day, hour in ((1, 3), (1, 4), (1, 5), (2, 18), (2, 19)):
        make_run(profile, alice, at(day, hour) + timedelta(minutes=30), **completed(
            at(day, hour), 42))
    make_run(profile, alice, datetime(2024, 3, 10, 6, 30, tzinfo=UTC))
    make_run(profile, alice, datetime(2024, 3, 10, 7, 30, tzinfo=UTC))
    # Either side of midnight in Kolkata (UTC+5:30) and Chatham (UTC+12:45).
    for minute in (15, 45):
        make_run(profile, alice, datetime(2024, 5, 2, 18, minute, tzinfo=UTC))
        make_run(profile, alice, datetime(2024, 5, 1, 11, minute, tzinfo=UTC))
    from django.test import RequestFactory

    from runs import views
    from runs.models import EnvironmentProfile

    for params in (RANGE, {**RANGE, "outcome": "succeeded"}, {"date_from": "2024-04-30"},
                   {"date_from": "2024-03-08", "date_to": "2024-03-12"}):
        request = RequestFactory().get(URL, params)
        request.user = admin
        history = views._history(request)
        assert history.is_valid()
        scan = charts.charts_for(history)
        with CaptureQueriesContext(connection) as queries:
            counted = charts.charts_for(history, EnvironmentProfile.objects.all())
        assert not any('FROM "runs_run"' in q["sql"] for q in queries)
        assert [(c.name, [bar.counts for bar in c.bars], c.seconds, c.timed)
                for c in counted.environments] == [
            (c.name, [bar.counts for bar in c.bars], c.seconds, c.timed)
            for c in scan.environments]


@pytest.mark.django_db(transaction=True)
def test_a_new_time_zone_is_counted_by_its_days_from_the_next_migrate(
        admin_user, known, profile, alice, settings):
    from runs import counts
    from runs.models import EnvironmentProfile

    make_run(profile, alice, datetime(2024, 5, 2, 23, 30, tzinfo=UTC))  # 3 May in Berlin
    settings.TIME_ZONE = "Europe/Berlin"
    try:
        history = _admin_history(admin_user)
        with CaptureQueriesContext(connection) as queries:
            before = charts.charts_for(history, EnvironmentProfile.objects.all())
        # Until then the counts are by UTC days: the charts count the runs themselves.
        assert any('FROM "runs_run"' in q["sql"] for q in queries)
        counts.follow_site_zone()  # what migrate runs at its end
        assert kept() == scanned(Run.objects.all())
        after = charts.charts_for(history, EnvironmentProfile.objects.all())
        assert [bar.total for bar in after.environments[0].bars] == [
            bar.total for bar in before.environments[0].bars]
        assert after.environments[0].bars[-1].total == 1  # the run of 3 May, local time
    finally:
        settings.TIME_ZONE = "UTC"
        counts.follow_site_zone()


def _admin_history(admin):
    from django.test import RequestFactory

    from runs import views

    request = RequestFactory().get(URL, RANGE)
    request.user = admin
    history = views._history(request)
    assert history.is_valid()
    return history
