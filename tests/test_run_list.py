"""The run history page (runs:list): columns, filters, who sees what, keyset pages, htmx.

People: alice (analyst, may run Production), bob (analyst in no group), carol (auditor
with runs.view_run), admin (superuser). Staging is a profile nobody but admins may run.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.forms import RunFilterForm
from runs.history import PAGE_SIZE, Cursor, RunHistory
from runs.models import EnvironmentProfile, Run
from tests import factories

URL = reverse("runs:list")
T0 = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def make_run(profile, user, **fields) -> Run:
    """A started run, created at T0 unless `fields` say otherwise."""
    return factories.make_run(profile, user, **{"created_at": T0, **fields})


def make_runs(profile, user, times) -> list[Run]:
    """Started runs created at each of `times`, in that order, with one INSERT."""
    return Run.objects.bulk_create(
        [factories.build_run(profile, user, created_at=at) for at in times])


def minutes_before_t0(count: int) -> list[datetime]:
    return [T0 - timedelta(minutes=i) for i in range(count)]


def pks_on(response) -> list[int]:
    """The run ids of a page, in order, from the links to their run pages."""
    return [int(pk) for pk in re.findall(r'href="/runs/(\d+)/"', response.content.decode())]


def link(response, rel: str) -> str:
    match = re.search(rf'rel="{rel}" href="([^"]+)"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else ""


def walk_older(client, url: str) -> list[list[int]]:
    """Follow the "Older runs" links from `url`; the ids of every page."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(pks_on(response))
        url = link(response, "next")
    return pages


# --- the page ---


def test_it_shows_the_columns_of_a_run(alice_client, alice, profile):
    run = make_run(profile, alice, job_id="7", parallelism=12, force=True, run_counter=4321,
                   run_link="https://app.coalescesoftware.io/runs/4321",
                   coalesce_status="completed", coalesce_started_at=T0,
                   coalesce_ended_at=T0 + timedelta(minutes=4, seconds=12),
                   error_message="Node failed: FOO\nTraceback line two")
    response = alice_client.get(URL)
    assert response.status_code == 200
    assert response.context["page"].rows[0].pk == run.pk
    html = response.content.decode()
    assert f'href="{run.get_absolute_url()}"' in html
    # When the attempt was made (not when Coalesce began the run), with its zone.
    assert '<th scope="col">Requested</th>' in html and "Started at" not in html
    assert '<time datetime="2024-05-10T12:00:00+00:00">2024-05-10 12:00 UTC</time>' in html
    assert 'class="ago">' in html and "days ago" in html
    # One number: the runCounter leads, and links to the run's page.
    assert f'<a href="{run.get_absolute_url()}">4321<' in html
    for text in ("alice", "Production", "Job 7", "forced", "Succeeded", "4 min 12 s",
                 "Node failed: FOO"):
        assert text in html
    assert 'href="https://app.coalescesoftware.io/runs/4321"' in html
    # Only the error's first line is shown in the table.
    assert "Traceback line two" not in html


def test_it_never_groups_the_digits_of_a_run_counter(alice_client, alice, profile, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    make_run(profile, alice, run_counter=1234567)
    html = alice_client.get(URL).content.decode()
    assert ">1234567<" in html


def test_it_shortens_selectors(alice_client, alice, profile):
    make_run(profile, alice, include_selector="+" + "a" * 60, exclude_selector="b")
    html = alice_client.get(URL).content.decode()
    assert "+" + "a" * 38 + "…" in html
    assert " minus b" in html


def test_it_says_entire_environment_without_a_target(alice_client, alice, profile):
    make_run(profile, alice)
    assert "Entire environment" in alice_client.get(URL).content.decode()


def test_it_shows_newest_first_with_ties_broken_by_id(alice_client, alice, profile):
    old = make_run(profile, alice, created_at=T0 - timedelta(days=1))
    tie_a, tie_b = make_run(profile, alice), make_run(profile, alice)
    new = make_run(profile, alice, created_at=T0 + timedelta(seconds=1))
    assert pks_on(alice_client.get(URL)) == [new.pk, tie_b.pk, tie_a.pk, old.pk]


def test_it_says_when_there_are_no_runs(alice_client, profile):
    assert "No runs yet." in alice_client.get(URL).content.decode()


def test_it_redirects_anonymous_users_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={URL}"


def test_it_rejects_post(alice_client):
    assert alice_client.post(URL).status_code == 405


# --- who sees what ---


@pytest.fixture
def two_runs(alice, profile, staging, admin_user) -> tuple[Run, Run]:
    return make_run(profile, alice), make_run(staging, admin_user)


def test_it_hides_runs_of_profiles_the_analyst_may_not_run(alice_client, two_runs):
    production_run, _ = two_runs
    assert pks_on(alice_client.get(URL)) == [production_run.pk]


def test_it_shows_nothing_to_an_analyst_without_profiles(client, bob, two_runs):
    client.force_login(bob)
    assert pks_on(client.get(URL)) == []


@pytest.mark.parametrize("viewer", ["carol", "admin_user"])
def test_it_shows_every_run_to_auditors_and_superusers(client, two_runs, viewer, request):
    client.force_login(request.getfixturevalue(viewer))
    assert sorted(pks_on(client.get(URL))) == sorted(run.pk for run in two_runs)


def choice_labels(form, name: str) -> list[str]:
    return [label for value, label in form.fields[name].choices if value]


def test_it_limits_filter_choices_to_what_the_analyst_sees(alice_client, two_runs, staging):
    form = alice_client.get(URL).context["history"].form
    assert choice_labels(form, "environment") == ["Production"]
    # admin started runs only on Staging, which alice cannot see.
    assert choice_labels(form, "user") == ["alice"]


def test_it_offers_every_environment_and_user_to_auditors(client, carol, two_runs):
    client.force_login(carol)
    form = client.get(URL).context["history"].form
    assert choice_labels(form, "environment") == ["Production", "Staging"]
    assert choice_labels(form, "user") == ["admin", "alice"]


@pytest.mark.parametrize("viewer", ["alice", "bob", "carol", "admin_user"])
def test_its_environment_choices_follow_the_run_visibility_rule(two_runs, viewer, request):
    # The environment filter applies the visibility rule to profiles; it must agree with
    # Run.objects.visible_to, which applies it to runs.
    user = request.getfixturevalue(viewer)
    runs_profiles = set(Run.objects.visible_to(user).values_list("profile", flat=True))
    profiles = EnvironmentProfile.objects.visible_to(user)
    assert runs_profiles == set(profiles.values_list("pk", flat=True))


def test_it_escapes_names_in_the_filter_choices(client, carol, profile):
    evil = User.objects.create_user('<b>"x"</b>')
    make_run(profile, evil)
    client.force_login(carol)
    html = client.get(URL, {"user": evil.pk}).content.decode()
    assert f'<option value="{evil.pk}" selected>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</option>' in html


def test_it_refuses_to_filter_on_an_environment_the_analyst_cannot_see(alice_client, two_runs,
                                                                        staging):
    response = alice_client.get(URL, {"environment": staging.pk})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


# --- filters ---


@pytest.fixture
def varied(alice, carol, profile, staging) -> dict[str, Run]:
    """Runs that differ in one filterable property each, all visible to carol."""
    return {
        "plain": make_run(profile, alice, created_at=T0),
        "staging": make_run(staging, alice, created_at=T0 - timedelta(hours=1)),
        "by_carol": make_run(profile, carol, created_at=T0 - timedelta(hours=2)),
        "rejected": make_run(profile, alice, status=Run.Status.REJECTED,
                             error_message="Job 7 does not exist",
                             created_at=T0 - timedelta(days=2)),
        "failed": make_run(profile, alice, coalesce_status="failed", run_counter=987654,
                           error_string="SQL compilation error: table MISSING",
                           created_at=T0 - timedelta(days=3)),
        "forced": make_run(staging, carol, force=True, status=Run.Status.REJECTED,
                           created_at=T0 - timedelta(days=5)),
    }


@pytest.fixture
def carol_client(client, carol):
    client.force_login(carol)
    return client


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["plain", "staging", "by_carol", "rejected", "failed", "forced"]),
    ({"environment": "staging"}, ["staging", "forced"]),
    ({"user": "carol"}, ["by_carol", "forced"]),
    ({"outcome": "could_not_start"}, ["rejected", "forced"]),
    ({"outcome": "failed"}, ["failed"]),
    ({"outcome": "queued"}, ["plain", "staging", "by_carol"]),
    ({"outcome": "running"}, []),
    ({"force": "on"}, ["forced"]),
    ({"date_from": "2024-05-07", "date_to": "2024-05-08"}, ["rejected", "failed"]),
    ({"date_to": "2024-05-07"}, ["failed", "forced"]),  # the end day is included
    ({"date_from": "2024-05-10"}, ["plain", "staging", "by_carol"]),
    ({"q": "987654"}, ["failed"]),  # digits: an exact runCounter
    ({"q": "98765"}, []),
    ({"q": "does NOT exist"}, ["rejected"]),  # error_message, any case
    ({"q": "compilation"}, ["failed"]),  # error_string
    ({"environment": "production", "outcome": "could_not_start"}, ["rejected"]),
    ({"environment": "staging", "user": "carol", "force": "1"}, ["forced"]),
    ({"user": "alice", "outcome": "queued", "date_from": "2024-05-10"}, ["plain", "staging"]),
    ({"environment": "production", "q": "compilation", "outcome": "succeeded"}, []),
])
def test_it_filters(carol_client, varied, profile, staging, alice, carol, params, expected):
    ids = {"production": profile.pk, "staging": staging.pk, "alice": alice.pk, "carol": carol.pk}
    query = {k: ids.get(v, v) for k, v in params.items()}
    response = carol_client.get(URL, query)
    assert response.status_code == 200
    assert pks_on(response) == [varied[name].pk for name in expected]


def test_it_reads_dates_in_the_site_time_zone(carol_client, alice, profile, settings):
    settings.TIME_ZONE = "America/New_York"  # UTC-4 in May
    late = make_run(profile, alice, created_at=datetime(2024, 5, 10, 3, 30, tzinfo=UTC))
    make_run(profile, alice, created_at=datetime(2024, 5, 10, 4, 30, tzinfo=UTC))
    # 03:30 UTC on the 10th is 23:30 on the 9th in New York.
    assert pks_on(carol_client.get(URL, {"date_to": "2024-05-09"})) == [late.pk]


def test_it_keeps_the_filters_in_the_export_link(carol_client, varied, staging):
    html = carol_client.get(URL, {"environment": staging.pk, "force": "on"}).content.decode()
    assert f'href="/history/export.csv?environment={staging.pk}&amp;force=1"' in html


@pytest.mark.parametrize("params", [
    {"environment": "abc"},
    {"environment": "999999"},
    {"environment": "99999999999999999999999"},
    {"user": "alice"},  # ids, not names
    {"outcome": "exploded"},
    {"date_from": "2024-13-01"},
    {"date_to": "yesterday"},
    {"date_from": "0001-01-01"},
    {"date_from": "2024-05-10", "date_to": "2024-05-01"},
    {"q": "x" * 201},
    {"cursor": "not a cursor!"},
    {"cursor": Cursor(T0, 5).encode()[:-3]},
    {"cursor": token("o|")},
    {"cursor": token("x|2024-05-10T12:00:00+00:00|1")},
    {"cursor": token("o|2024-05-10T12:00:00|1")},  # a time without an offset
    {"cursor": token("o|2024-05-10T12:00:00+00:00|-1")},
    {"cursor": token("o|2024-05-10T12:00:00+00:00|99999999999999999999")},
    {"cursor": token("n|0001-01-01T00:00:00+14:00|1")},  # before year 1 in UTC
    {"cursor": token("o|2024-05-10T12:00:00+00:00|1|2")},
    {"cursor": "w6k"},  # not ASCII once decoded
])
def test_it_answers_400_with_the_errors_for_bad_filters(alice_client, alice, profile, params):
    make_run(profile, alice)
    response = alice_client.get(URL, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert "these filters are not valid" in html
    assert pks_on(response) == []  # no rows


def test_it_returns_the_errors_in_the_fragment_to_htmx_with_200(alice_client, profile):
    # htmx 2 swaps only 2xx answers, and the user must see why nothing matched.
    response = alice_client.get(URL, {"date_from": "nope"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="run-rows"')
    assert "From: Enter a valid date." in html


# --- htmx ---


def test_it_returns_only_the_rows_to_htmx(alice_client, alice, profile):
    run = make_run(profile, alice)
    response = alice_client.get(URL, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="run-rows"')
    assert html.rstrip().endswith("</section>")
    assert f'href="/runs/{run.pk}/"' in html
    assert "<html" not in html
    assert 'id="history-filters"' not in html


def test_it_pushes_the_normalised_url_to_htmx(alice_client, alice, profile):
    make_run(profile, alice)
    params = {"environment": "", "user": "", "outcome": "running", "date_from": "", "q": ""}
    response = alice_client.get(URL, params, headers={"HX-Request": "true"})
    # The form sends every field; the address bar shows only the filters in use.
    assert response["HX-Push-Url"] == "/?outcome=running"


def test_it_pushes_the_plain_url_once_paging_back_reaches_the_newest(alice_client, alice,
                                                                     profile):
    runs = make_runs(profile, alice, minutes_before_t0(60))
    deep = Cursor(runs[55].created_at, runs[55].pk).encode()
    assert alice_client.get(URL, {"cursor": deep}, headers={"HX-Request": "true"}
                            )["HX-Push-Url"] == f"/?cursor={deep}"
    top = Cursor(runs[10].created_at, runs[10].pk, older=False).encode()
    assert alice_client.get(URL, {"cursor": top}, headers={"HX-Request": "true"}
                            )["HX-Push-Url"] == "/"


def test_it_wires_the_filter_form_and_pager_for_htmx_and_plain_links(alice_client, alice,
                                                                      profile):
    make_runs(profile, alice, minutes_before_t0(PAGE_SIZE + 1))
    html = alice_client.get(URL).content.decode()
    form = re.search(r'<form id="history-filters"[^>]*>', html).group(0)
    assert 'method="get" action="/"' in form
    assert 'hx-get="/"' in form and 'hx-push-url="true"' in form
    assert 'hx-target="#run-rows"' in form
    older = re.search(r'<a rel="next" href="([^"]+)" hx-get="([^"]+)"', html)
    assert older.group(1) == older.group(2)  # every hx-get has the same href
    assert 'hx-get="/history/charts/"' in html


def test_it_renders_the_rows_partial_on_its_own(alice, profile):
    run = make_run(profile, alice, error_message="Bad <script>")
    runs = Run.objects.all()
    history = RunHistory(runs, RunFilterForm({}, runs=runs,
                                             profiles=EnvironmentProfile.objects.all()))
    assert history.is_valid()
    html = render_to_string("runs/run_list.html#run-rows",
                            {"history": history, "page": history.page()})
    assert f'href="/runs/{run.pk}/"' in html
    assert "Bad &lt;script&gt;" in html


def test_every_text_in_a_row_is_escaped(alice, profile):
    hostile = '<img src=x onerror="alert(1)">'
    profile.name = f"Env {hostile}"
    profile.save()
    alice.username = f"a{hostile}"[:150]
    alice.save()
    make_run(profile, alice, include_selector=f"{{ name: {hostile} }}",
             via_token_name=hostile, run_link=f'https://app.example.com/"{hostile}',
             error_message=hostile, run_counter=12, force=True)
    runs = Run.objects.all()
    history = RunHistory(runs, RunFilterForm({}, runs=runs,
                                             profiles=EnvironmentProfile.objects.all()))
    assert history.is_valid()
    html = render_to_string("runs/run_list.html#run-rows",
                            {"history": history, "page": history.page()})
    assert "<img" not in html and 'onerror="' not in html
    assert html.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 5
    assert '<span class="tag">forced</span>' in html


# --- keyset pages ---


def test_it_pages_by_cursor(alice_client, alice, profile):
    runs = make_runs(profile, alice, minutes_before_t0(120))
    pages = walk_older(alice_client, URL)
    assert [len(page) for page in pages] == [50, 50, 20]
    assert sum(pages, []) == [run.pk for run in runs]


def test_it_pages_through_identical_timestamps_without_skipping_or_repeating(
        alice_client, alice, profile):
    # 130 runs share one created_at, straddling two page boundaries, between others.
    newer = [make_run(profile, alice, created_at=T0 + timedelta(seconds=s)) for s in (2, 1)]
    tied = make_runs(profile, alice, [T0] * 130)
    older = [make_run(profile, alice, created_at=T0 - timedelta(seconds=s)) for s in (1, 2)]
    pages = walk_older(alice_client, URL)
    seen = sum(pages, [])
    assert [len(page) for page in pages] == [50, 50, 34]
    assert len(seen) == len(set(seen))
    assert seen == [r.pk for r in newer] + sorted((r.pk for r in tied), reverse=True) + [
        r.pk for r in older]


def test_it_pages_back_to_newer_runs_through_ties(alice_client, alice, profile):
    make_runs(profile, alice, [T0] * 130)
    first = alice_client.get(URL)
    second = alice_client.get(link(first, "next"))
    third = alice_client.get(link(second, "next"))
    back_to_second = alice_client.get(link(third, "prev"))
    assert pks_on(back_to_second) == pks_on(second)
    back_to_first = alice_client.get(link(back_to_second, "prev"))
    assert pks_on(back_to_first) == pks_on(first)
    assert link(back_to_first, "prev") == ""  # the newest page has no newer link


def test_it_shows_a_full_first_page_when_paging_back_to_the_top(alice_client, alice, profile):
    runs = make_runs(profile, alice, minutes_before_t0(60))
    # A "newer" cursor just below the 10th newest run: fewer than a page above it.
    cursor = Cursor(runs[10].created_at, runs[10].pk, older=False).encode()
    response = alice_client.get(URL, {"cursor": cursor})
    assert pks_on(response) == [run.pk for run in runs[:PAGE_SIZE]]


def test_it_keeps_the_filters_in_the_pager_links(carol_client, carol, profile, staging):
    Run.objects.bulk_create([factories.build_run(p, carol, created_at=at)
                             for at in minutes_before_t0(PAGE_SIZE + 5)
                             for p in (profile, staging)])
    first = carol_client.get(URL, {"environment": staging.pk})
    assert f"environment={staging.pk}&cursor=" in link(first, "next")
    second = carol_client.get(link(first, "next"))
    assert len(pks_on(second)) == 5
    assert set(pks_on(second)) <= set(Run.objects.filter(profile=staging).values_list(
        "pk", flat=True))


def test_it_says_so_past_the_last_run(alice_client, alice, profile):
    run = make_run(profile, alice)
    response = alice_client.get(URL, {"cursor": Cursor(run.created_at, run.pk).encode()})
    assert response.status_code == 200
    assert "No older runs." in response.content.decode()
    assert link(response, "prev")  # and offers the way back


def test_it_never_counts_rows(alice_client, alice, profile):
    make_run(profile, alice)
    with CaptureQueriesContext(connection) as queries:
        alice_client.get(URL)
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]


def test_its_query_count_does_not_grow_with_depth(alice_client, alice, profile,
                                                   django_assert_max_num_queries):
    runs = make_runs(profile, alice, minutes_before_t0(260))
    # session, user, permissions, the page, the two filter choices, and the navigation's
    # "may this user start runs?"
    first_page_queries = 8
    with django_assert_max_num_queries(first_page_queries):
        alice_client.get(URL)
    deep = Cursor(runs[209].created_at, runs[209].pk).encode()
    with django_assert_max_num_queries(first_page_queries):
        response = alice_client.get(URL, {"cursor": deep})
    assert pks_on(response) == [run.pk for run in runs[210:]]


# --- outcomes, failure summaries and search ---

from runs.history import outcome_condition  # noqa: E402
from runs.models import Outcome, outcome_of  # noqa: E402
from runs.summaries import summarise  # noqa: E402
from tests.cases import OUTCOME_CASES  # noqa: E402


@pytest.mark.parametrize(("status", "coalesce_status", "unfollowed", "words"), OUTCOME_CASES)
def test_it_shows_one_outcome_badge_in_the_pages_words(alice_client, alice, profile, status,
                                                       coalesce_status, unfollowed, words):
    make_run(profile, alice, status=status, coalesce_status=coalesce_status,
             stopped_following_at=T0 if unfollowed else None)
    html = alice_client.get(URL).content.decode()
    badges = re.findall(r'<span class="outcome outcome-([a-z_]+)"><span class="outcome-shape" '
                        r'aria-hidden="true">[^<]*</span> ([^<]*)</span>', html)
    assert [words.replace("'", "&#x27;")] == [text for _, text in badges]


def test_the_outcome_filter_finds_exactly_the_runs_with_that_outcome(alice_client, alice,
                                                                      profile):
    runs = [make_run(profile, alice, status=status, coalesce_status=coalesce_status,
                     stopped_following_at=T0 if unfollowed else None)
            for status, coalesce_status, unfollowed, _ in OUTCOME_CASES]
    for outcome in Outcome:
        expected = {run.pk for run in runs if outcome_of(
            run.status, run.coalesce_status, run.stopped_following_at) == outcome}
        assert set(Run.objects.filter(outcome_condition(outcome))
                   .values_list("pk", flat=True)) == expected, outcome
        assert set(pks_on(alice_client.get(URL, {"outcome": outcome.value}))) == expected


def failed_in_coalesce(profile, user, **fields) -> Run:
    run = make_run(profile, user, coalesce_status="failed", **fields)
    run.results = [
        {"node_id": "n1", "name": "STG_ORDERS", "status": "completed"},
        {"node_id": "n2", "name": "FCT_ORDERS", "status": "failed",
         "error": "SQL compilation error: invalid identifier 'AMOUNT'"},
        {"node_id": "n3", "name": "FCT_REVENUE", "status": "failed", "error": "upstream"},
        {"node_id": "n4", "name": "DIM_CUSTOMER", "status": "completed"},
        {"node_id": "n5", "name": "DIM_DATE", "status": "completed"},
    ]
    summarise(run, "Node FCT_ORDERS failed in warehouse WH_XL")
    run.save()
    return run


def test_it_says_why_a_run_failed_in_coalesce(alice_client, alice, profile):
    failed_in_coalesce(profile, alice, run_counter=55)
    html = alice_client.get(URL).content.decode()
    assert ("2 of 5 nodes failed: FCT_ORDERS, FCT_REVENUE. SQL compilation error: invalid "
            "identifier &#x27;AMOUNT&#x27;") in html


@pytest.mark.parametrize("q", [
    "FCT_REVENUE", "fct_orders", "invalid identifier", "wh_xl", "+STG_ORDERS", "55", "#{pk}",
])
def test_search_covers_numbers_nodes_errors_reasons_and_selectors(alice_client, alice,
                                                                  profile, q):
    run = failed_in_coalesce(profile, alice, run_counter=55, include_selector="+STG_ORDERS")
    make_run(profile, alice, run_counter=56, include_selector="{ DIM_DATE }")
    assert pks_on(alice_client.get(URL, {"q": q.format(pk=run.pk)})) == [run.pk]


def test_a_number_is_the_runcounter_and_the_dashboard_number_only_without_one(
        alice_client, alice, profile):
    numbered = make_run(profile, alice, run_counter=1)
    never_numbered = make_run(profile, alice, status=Run.Status.REJECTED)
    assert pks_on(alice_client.get(URL, {"q": "1"})) == [numbered.pk]
    assert pks_on(alice_client.get(URL, {"q": str(never_numbered.pk)})) == [never_numbered.pk]
    assert pks_on(alice_client.get(URL, {"q": f"#{numbered.pk}"})) == [numbered.pk]


def test_a_search_that_matches_nothing_says_what_was_searched(alice_client, alice, profile):
    make_run(profile, alice)
    html = alice_client.get(URL, {"q": "NO_SUCH_NODE"}).content.decode()
    assert ("No runs match “NO_SUCH_NODE” in their number, node names, errors, failure "
            "reason or selectors.") in html


def test_search_finds_text_written_after_the_run_was_created(alice_client, alice, profile):
    run = make_run(profile, alice, run_counter=77)
    Run.objects.filter(pk=run.pk).update(search_text="dim_late_node")
    assert pks_on(alice_client.get(URL, {"q": "DIM_LATE"})) == [run.pk]
    run.error_message = "Warehouse 100% busy"
    Run.objects.bulk_update([run], ["error_message"])
    assert pks_on(alice_client.get(URL, {"q": "100% busy"})) == [run.pk]
    assert pks_on(alice_client.get(URL, {"q": "dim_late_node"})) == [run.pk]
    # "_" and "%" are themselves, not wildcards.
    assert pks_on(alice_client.get(URL, {"q": "100_ busy"})) == []
    assert pks_on(alice_client.get(URL, {"q": "dim%node"})) == []


@pytest.mark.parametrize("q", ['"RAW"."ORDERS"', '"raw', "Xy", "o"])
def test_search_takes_quotes_and_short_words_literally(alice_client, alice, profile, q):
    run = make_run(profile, alice, error_message='Object "RAW"."ORDERS" does not exist (xy)')
    make_run(profile, alice, error_message="Warehouse suspended")  # another run beside it
    found = pks_on(alice_client.get(URL, {"q": q}))
    assert run.pk in found
    assert pks_on(alice_client.get(URL, {"q": q + "zz"})) == []


def test_a_word_in_many_runs_is_found_by_reading_the_newest(alice_client, alice, profile,
                                                            monkeypatch):
    from runs import history

    runs = [make_run(profile, alice, error_message=f"node FCT_{i} failed") for i in range(4)]
    expected = [run.pk for run in reversed(runs)]
    assert pks_on(alice_client.get(URL, {"q": "fct_"})) == expected
    monkeypatch.setattr(history, "FTS_MAX_CANDIDATES", 2)  # SQLite: past the FTS5 path
    assert pks_on(alice_client.get(URL, {"q": "fct_"})) == expected
    assert pks_on(alice_client.get(URL, {"q": "fct_9"})) == []


def test_the_history_never_embeds_whole_selectors(alice_client, alice, profile):
    selector = "{ name: " + "X" * 3_900 + " }"
    factories.make_run(profile, alice, include_selector=selector, exclude_selector=selector)

    html = alice_client.get(URL).content.decode()

    assert selector not in html and "X" * 400 not in html
    assert len(html) < 40_000
