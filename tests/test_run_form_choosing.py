"""Choosing what to run: the node picker, the preview, the job check, presets, "Run
again" and the preview checked against what Coalesce ran."""

from __future__ import annotations

import logging
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from runs import catalogue
from runs.models import KnownJob, Preset, Run, RunPreview
from runs.preview_check import check_run, log_mismatches
from tests.factories import grant, make_run, run_form, sim_profile

NEW_URL = reverse("runs:new")


@pytest.fixture
def sim(simulator, analysts):
    profile = sim_profile(simulator.base_url, "env-1", groups=[analysts])
    catalogue.refresh(profile)
    return profile


def form_for(profile, **fields):
    return run_form(profile, **{"job_id": "", "parallelism": "4", **fields})


def test_it_searches_nodes_by_name_location_or_type(alice_client, sim):
    by_name = alice_client.get(reverse("runs:node_search"),
                               {"environment": sim.pk, "node_q": "fct_ord"}).content.decode()
    by_type = alice_client.get(reverse("runs:node_search"),
                               {"environment": sim.pk, "node_q": "View"}).content.decode()

    assert "<strong>FCT_ORDERS</strong>" in by_name
    assert "RPT_VIEW_" in by_type


def test_it_hides_the_nodes_of_an_environment_bob_may_not_run(client, bob, sim):
    client.force_login(bob)
    page = client.get(reverse("runs:node_search"), {"environment": sim.pk, "node_q": "FCT"})

    assert "FCT_ORDERS" not in page.content.decode()


def test_picking_adds_a_term_joined_with_or(alice_client, sim):
    built, _ = catalogue.catalogue_for(sim)
    ids = {n.name: n.id for n in built.nodes}
    data = form_for(sim, include_selector="{ location: MART name: FCT_ORDERS }",
                    form_action=f"include:{ids['DIM_CUSTOMER']}")

    page = alice_client.post(NEW_URL, data).content.decode()

    assert ("{ location: MART name: FCT_ORDERS } OR { location: MART name: DIM_CUSTOMER }"
            in page)
    assert "Matches 2 nodes" in page
    assert not Run.objects.exists()


def test_picking_to_exclude_and_the_search_button_work_without_javascript(alice_client, sim):
    page = alice_client.post(NEW_URL, form_for(sim, node_q="STG_ORDERS",
                                               form_action="search")).content.decode()
    node_id = re.search(r'value="exclude:([^"]+)"', page).group(1)

    page = alice_client.post(NEW_URL, form_for(sim, form_action=f"exclude:{node_id}")
                             ).content.decode()

    assert "{ location: STAGING name: STG_ORDERS }</textarea>" in page
    assert "Matches 299 nodes" in page  # everything minus the one excluded


def test_the_preview_groups_by_location_and_counts_the_rest(alice_client, sim):
    page = alice_client.get(reverse("runs:selector_preview"), {
        "environment": sim.pk, "include_selector": "{ location: STAGING } OR { SOURCES }",
    }).content.decode()

    assert "Matches 99 nodes" in page
    assert "<h3>STAGING</h3>" in page
    assert "and 49 more" in page


def test_the_preview_says_what_it_cannot_preview(alice_client, sim):
    page = alice_client.get(reverse("runs:selector_preview"), {
        "environment": sim.pk, "include_selector": '{ subgraph: "My Dims" } OR { A }',
    }).content.decode()

    assert "Can't preview <code>subgraph</code> terms" in page
    assert "Matches" not in page


def test_the_preview_shows_a_syntax_error_with_its_position(alice_client, sim):
    page = alice_client.get(reverse("runs:selector_preview"), {
        "environment": sim.pk, "include_selector": "{ location: STAGING colour: red }",
    }).content.decode()

    assert "Unknown attribute" in page
    assert "(character 21)" in page


def test_the_preview_flags_pipes_inside_braces(alice_client, sim):
    page = alice_client.get(reverse("runs:selector_preview"), {
        "environment": sim.pk, "include_selector": "{ A || B }"}).content.decode()

    assert "Matches 0 nodes" in page
    assert "||" in page and "warning" in page


def test_nothing_selected_refreshes_all_nodes(alice_client, sim):
    page = alice_client.get(NEW_URL, {"environment": sim.pk}).content.decode()

    assert "Nothing selected: refreshes all 300 nodes" in page
    assert "Refreshes all 300 nodes." in page


def test_a_started_run_keeps_its_preview_and_checks_it_against_the_results(
        alice_client, sim, simulator):
    alice_client.post(NEW_URL, form_for(sim, include_selector="+{ name: FCT_REVENUE }"))

    run = Run.objects.get()
    assert len(run.preview.node_ids) == 7
    simulator.state.advance(60)
    from runs import service
    assert service.refresh_results(run) is None
    run.coalesce_status = "completed"

    check = run.preview_check()

    assert check.matched and check.previewed == 7


def test_a_mismatch_lists_the_differences_and_is_logged(alice, sim, caplog):
    run = make_run(sim, alice, include_selector="{ A }", coalesce_status="completed",
                   results=[{"node_id": "x1", "name": "RAN_ONLY"}])
    built, _ = catalogue.catalogue_for(sim)
    previewed = next(n for n in built.nodes if n.name == "FCT_ORDERS")
    RunPreview.objects.create(run=run, node_ids=[previewed.id])

    check = check_run(run)
    with caplog.at_level(logging.WARNING, logger="runs.preview_check"):
        log_mismatches([run])

    assert check.not_run == ("FCT_ORDERS",) and check.not_previewed == ("RAN_ONLY",)
    assert "Preview mismatch" in caplog.text and "'{ A }'" in caplog.text


def test_run_again_fills_the_form_but_never_force(alice_client, alice, sim):
    old = make_run(sim, alice, job_id="101", include_selector="{ A }", exclude_selector="{ B }",
                   parallelism=3, force=True, parameters={"REGION": "emea"})

    page = alice_client.get(NEW_URL, {"from_run": old.pk}).content.decode()

    for typed in ('value="101"', "{ A }</textarea>", "{ B }</textarea>",
                  'name="parallelism" value="3"', 'value="REGION"', 'value="emea"',
                  f'<option value="{sim.pk}" selected>'):
        assert typed in page
    assert 'name="force"' not in page or "checked" not in page


def test_run_again_refuses_a_run_bob_may_not_run(client, bob, alice, sim):
    old = make_run(sim, alice, include_selector="{ SECRET_NODE }")
    client.force_login(grant(bob, "view_run"))  # may see it, may not run it

    page = client.get(NEW_URL, {"from_run": old.pk}).content.decode()

    assert "SECRET_NODE" not in page
    assert "You can't start runs" in page


def test_people_who_may_run_nothing_are_told_why(client, bob):
    client.force_login(bob)

    page = client.get(NEW_URL).content.decode()

    assert "You can't start runs: ask an admin to add you to an environment's groups" in page
    assert 'id="run-form"' not in page


def test_analysts_learn_that_force_exists_and_who_grants_it(alice_client, sim):
    page = alice_client.get(NEW_URL, {"environment": sim.pk}).content.decode()

    assert "Can force a refresh after a failed deployment" in page
    assert "ask an admin" in page


def test_a_preset_is_saved_loaded_and_recorded_on_the_run(alice_client, sim, simulator):
    alice_client.post(NEW_URL, form_for(
        sim, include_selector="{ FCT_ORDERS }", param_name=["REGION"], param_value=["emea"],
        preset_name="Orders", preset_shared="on", force="on", form_action="save_preset"))
    preset = Preset.objects.get()
    assert (preset.name, preset.shared, preset.parameters) == ("Orders", True, {"REGION": "emea"})
    assert not hasattr(preset, "force")

    page = alice_client.get(NEW_URL, {"preset": preset.pk}).content.decode()
    assert "{ FCT_ORDERS }</textarea>" in page and 'value="emea"' in page
    token = re.search(r'name="submit_token" value="([^"]+)"', page).group(1)
    alice_client.post(NEW_URL, form_for(sim, include_selector="{ FCT_ORDERS }",
                                        preset=str(preset.pk), submit_token=token))

    assert Run.objects.get().preset == preset


def test_a_private_preset_is_not_offered_to_others(client, alice, analysts, sim):
    Preset.objects.create(profile=sim, owner=alice, name="Mine", include_selector="{ A }")
    colleague = type(alice).objects.create_user("dave")
    colleague.groups.add(analysts)
    client.force_login(colleague)

    page = client.get(NEW_URL, {"environment": sim.pk}).content.decode()

    assert ">Mine</a>" not in page


def test_the_job_check_names_the_job(alice_client, sim):
    page = alice_client.get(reverse("runs:job_check"),
                            {"environment": sim.pk, "job_id": "101"}).content.decode()

    assert "Daily marts" in page and "{ location: MART nodeType: Fact }" in page
    assert "27 nodes in the node list" in page  # the facts of the 300-node catalogue


def test_the_job_check_reads_404_as_no_such_job(alice_client, sim):
    page = alice_client.get(reverse("runs:job_check"),
                            {"environment": sim.pk, "job_id": "999"}).content.decode()

    assert "No job 999 in this environment." in page


def test_other_job_check_failures_do_not_stop_the_run(alice_client, sim, simulator):
    simulator.state.set_behaviour("env-1", "http429-reads")

    page = alice_client.get(reverse("runs:job_check"),
                            {"environment": sim.pk, "job_id": "101"}).content.decode()

    assert "Couldn&#x27;t check the job. You can still start the run." in page


def preview_of(client, profile, **fields) -> str:
    """The preview box for these form fields, as the page asks for it while typing."""
    return client.get(reverse("runs:selector_preview"),
                      {"environment": profile.pk, **fields}).content.decode()


def test_a_job_s_run_is_previewed_once_the_job_check_has_seen_its_selectors(
        alice_client, sim, simulator):
    before = preview_of(alice_client, sim, job_id="101")
    answer = alice_client.get(reverse("runs:job_check"),
                              {"environment": sim.pk, "job_id": "101"}).content.decode()
    calls = simulator.state.total_calls()
    after = preview_of(alice_client, sim, job_id="101")

    assert "Can't preview: job 101's selectors aren't known yet." in before
    assert "Matches" not in before
    # The check's answer brings the preview up to date in place (htmx out of band).
    assert 'id="selector-preview" class="preview" aria-live="polite" hx-swap-oob="true"' in answer
    assert "Matches 27 nodes" in answer  # the facts of the 300-node catalogue
    assert "Matches 27 nodes" in after and "job 101's selectors, as checked" in after
    assert simulator.state.total_calls() == calls  # the preview itself never asks Coalesce


def test_a_form_opened_with_an_unchecked_job_checks_it_once_the_page_is_shown(
        alice_client, alice, sim, simulator):
    # "Run again" of a job's run: the form arrives with the job ID already typed.
    run = make_run(sim, alice, job_id="101")
    url = f"{NEW_URL}?from_run={run.pk}"

    unchecked = alice_client.get(url).content.decode()
    alice_client.get(reverse("runs:job_check"), {"environment": sim.pk, "job_id": "101"})
    calls = simulator.state.total_calls()
    checked = alice_client.get(url).content.decode()

    # The page's own request never asks Coalesce: its job field asks once it is shown
    # (htmx "load"), and only while the job's selectors aren't known.
    assert 'hx-trigger="input changed delay:500ms, load"' in unchecked
    assert 'hx-trigger="input changed delay:500ms"' in checked
    assert "Matches 27 nodes" in checked
    assert simulator.state.total_calls() == calls


def test_a_job_without_selectors_previews_the_whole_environment(alice_client, sim):
    KnownJob.objects.create(profile=sim, job_id="5", checked_at=timezone.now())

    page = preview_of(alice_client, sim, job_id="5")

    assert "Refreshes all 300 nodes" in page and "job 5 has no selectors" in page


def test_a_run_of_a_checked_job_keeps_the_job_s_preview_and_it_matches(
        alice_client, sim, simulator):
    alice_client.get(reverse("runs:job_check"), {"environment": sim.pk, "job_id": "101"})
    alice_client.post(NEW_URL, form_for(sim, job_id="101"))

    run = Run.objects.get()
    assert len(run.preview.node_ids) == 27
    simulator.state.advance(60)
    from runs import service
    assert service.refresh_results(run) is None
    run.coalesce_status = "completed"

    check = run.preview_check()

    assert check.matched and check.ran == 27  # Coalesce ran the job's selection


def test_a_run_of_an_unchecked_job_starts_without_a_preview(alice_client, sim, simulator):
    alice_client.post(NEW_URL, form_for(sim, job_id="101"))

    run = Run.objects.get()
    assert run.run_counter is not None  # started: an unknown job never holds a run back
    assert not RunPreview.objects.exists()  # and nothing is guessed
    assert not [call for call in simulator.state.calls_snapshot() if "/jobs/" in call]


def test_a_job_with_selectors_of_the_run_s_own_keeps_no_preview(alice_client, sim):
    KnownJob.objects.create(profile=sim, job_id="101", include_selector="{ location: MART }",
                            checked_at=timezone.now())

    alice_client.post(NEW_URL, form_for(sim, job_id="101", include_selector="{ FCT_ORDERS }"))

    assert Run.objects.exists() and not RunPreview.objects.exists()


def test_a_job_coalesce_no_longer_has_is_forgotten(alice_client, sim):
    KnownJob.objects.create(profile=sim, job_id="999", include_selector="{ location: MART }",
                            checked_at=timezone.now())

    alice_client.get(reverse("runs:job_check"), {"environment": sim.pk, "job_id": "999"})

    assert not KnownJob.objects.exists()
    assert "job 999's selectors aren't known yet" in preview_of(alice_client, sim, job_id="999")


def test_a_failed_job_check_keeps_what_was_known(alice_client, sim, simulator):
    alice_client.get(reverse("runs:job_check"), {"environment": sim.pk, "job_id": "101"})
    simulator.state.set_behaviour("env-1", "http429-reads")

    alice_client.get(reverse("runs:job_check"), {"environment": sim.pk, "job_id": "101"})

    assert "Matches 27 nodes" in preview_of(alice_client, sim, job_id="101")


def test_jobs_used_before_are_suggested(alice_client, alice, sim):
    make_run(sim, alice, job_id="55")

    page = alice_client.get(NEW_URL, {"environment": sim.pk}).content.decode()

    assert '<option value="55">' in page


def test_admins_see_presets(admin_client, alice, sim):
    Preset.objects.create(profile=sim, owner=alice, name="Nightly marts")

    page = admin_client.get("/admin/runs/preset/").content.decode()

    assert "Nightly marts" in page


def test_the_run_page_says_the_preview_matched(alice_client, alice, sim):
    run = make_run(sim, alice, include_selector="{ A }", coalesce_status="completed",
                   results=[{"node_id": "x1", "name": "A"}, {"node_id": "x2", "name": "B"}])
    RunPreview.objects.create(run=run, node_ids=["x1", "x2"])

    page = alice_client.get(run.get_absolute_url()).content.decode()

    assert "Preview matched: 2 nodes" in page


def test_the_refresh_link_answers_htmx_with_the_status_line(alice_client, sim):
    response = alice_client.post(reverse("runs:refresh_catalogue"), {"environment": sim.pk},
                                 headers={"HX-Request": "true"})

    page = response.content.decode()
    assert page.lstrip().startswith('<p id="catalogue-status"')
    assert "refreshing…" in page  # and it polls until the worker is done
    assert 'hx-trigger="load delay:2s"' in page
