"""The node catalogue: the client's paged listing, the worker's refresh against the
simulator, what the form says about the list, and the simulator's nodes, jobs and runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from responses import matchers

from coalesce_simulator.catalogue import nodes_for, select
from runs import catalogue
from runs.coalesce import CoalesceClient
from runs.models import NodeCatalogue
from runs.selectors import Catalogue, NodeRecord, preview
from tests.factories import BASE_URL, sim_profile

NODES_URL = f"{BASE_URL}/api/v1/environments/42/nodes"


def test_the_client_follows_next_and_keeps_only_what_the_preview_needs(coalesce, settings):
    full = {"id": "n2", "name": "FCT", "locationName": "MART", "nodeType": "Fact",
            "description": "x" * 1000, "metadata": {"columns": [{"name": "C"}] * 50,
            "sourceMapping": [{"dependencies": [{"locationName": "STG", "nodeName": "S"}]}]}}
    coalesce.get(NODES_URL, json={"data": [{"id": "n1", "name": "S", "locationName": "STG",
                                            "nodeType": "Stage"}], "next": "n1"},
                 match=[responses_query({"detail": "true", "limit": "500", "orderBy": "id"})])
    coalesce.get(NODES_URL, json={"data": [full, {"name": "no id"}], "next": None})

    with CoalesceClient(BASE_URL, "token") as client:
        pages = list(client.list_nodes("42"))

    assert [[r.id for r in page] for page in pages] == [["n1"], ["n2"]]
    assert pages[1][0].depends_on == (("STG", "S"),)
    assert coalesce.calls[1].request.params["startingFrom"] == "n1"


def responses_query(params):
    return matchers.query_param_matcher(params)


def test_the_node_listing_may_be_larger_than_other_answers(coalesce):
    # Over the 1 MiB cap every other call has: a detailed page of many nodes.
    nodes = [{"id": f"n{i}", "name": f"N{i}", "locationName": "L", "nodeType": "Stage",
              "description": "d" * 300} for i in range(4000)]
    coalesce.get(NODES_URL, json={"data": nodes})

    with CoalesceClient(BASE_URL, "token") as client:
        pages = list(client.list_nodes("42"))

    assert sum(len(p) for p in pages) == 4000


@pytest.fixture
def sim(simulator, analysts):
    return sim_profile(simulator.base_url, "env-1", groups=[analysts])


def test_a_refresh_stores_the_simulated_dag(sim, simulator):
    summary = catalogue.refresh(sim)

    row = NodeCatalogue.objects.get(profile=sim)
    assert row.node_count == 300
    assert "300 nodes" in summary
    built, refreshed = catalogue.catalogue_for(sim)
    assert refreshed == row.refreshed_at
    # Lineage survives the round trip: FCT_ORDERS reads STG_ORDERS, DIM_CUSTOMER, and
    # through them the two RAW tables.
    up = preview(built, "+{ location: MART name: FCT_ORDERS }")
    names = {built.by_id[i].name for i in up.node_ids}
    assert names == {"FCT_ORDERS", "STG_ORDERS", "DIM_CUSTOMER", "STG_CUSTOMERS",
                     "RAW_ORDERS", "RAW_CUSTOMERS"}
    assert built.unknown_dependencies == 0


def test_a_failed_refresh_keeps_the_last_good_list_and_says_so(sim, simulator):
    catalogue.refresh(sim)
    good = NodeCatalogue.objects.get(profile=sim).refreshed_at
    simulator.state.set_behaviour("env-1", "http429-reads")

    catalogue.refresh(sim)

    row = NodeCatalogue.objects.get(profile=sim)
    assert row.node_count == 300
    assert row.refreshed_at == good
    assert "429" in row.last_error
    status = catalogue.status_of(sim)
    assert not status.missing and status.last_error


def test_the_form_queues_a_refresh_only_when_the_list_is_missing_or_old(alice_client, sim,
                                                                       settings):
    alice_client.get("/runs/new/", {"environment": sim.pk})
    alice_client.get("/runs/new/", {"environment": sim.pk})
    assert DBTaskResult.objects.count() == 1  # queued once, not per page view

    NodeCatalogue.objects.filter(profile=sim).update(
        refreshed_at=timezone.now(), requested_at=timezone.now() - timedelta(hours=2),
        last_attempt_at=timezone.now())
    alice_client.get("/runs/new/", {"environment": sim.pk})
    assert DBTaskResult.objects.count() == 1  # fresh: nothing queued

    settings.NODE_CATALOGUE_MAX_AGE_SECONDS = 60
    NodeCatalogue.objects.filter(profile=sim).update(
        refreshed_at=timezone.now() - timedelta(minutes=5))
    alice_client.get("/runs/new/", {"environment": sim.pk})
    assert DBTaskResult.objects.count() == 2  # older than the setting


def test_the_form_says_how_old_the_list_is(alice_client, sim):
    catalogue.refresh(sim)
    NodeCatalogue.objects.filter(profile=sim).update(
        refreshed_at=timezone.now() - timedelta(minutes=12))

    page = alice_client.get("/runs/new/", {"environment": sim.pk}).content.decode()

    assert "Node list refreshed 12 min ago" in page
    assert ">Refresh</button>" in page


def test_the_refresh_button_queues_one_now(alice_client, sim):
    catalogue.refresh(sim)

    response = alice_client.post("/runs/new/node-list/refresh/", {"environment": sim.pk})

    assert response.status_code == 302
    assert DBTaskResult.objects.count() == 1


def test_the_form_works_without_a_list(alice_client, profile, coalesce):
    profile.default_job_id = ""
    profile.save()

    page = alice_client.get("/runs/new/", {"environment": profile.pk}).content.decode()

    assert "No node list yet" in page
    assert "No preview: this environment's node list isn't available yet." in page
    assert len(coalesce.calls) == 0  # reading the catalogue never calls Coalesce


# -- the simulator -------------------------------------------------------------------------


def test_the_simulator_pages_its_nodes(simulator):
    url = f"{simulator.base_url}/api/v1/environments/e/nodes"
    headers = {"Authorization": "Bearer sim-token"}
    first = requests.get(url, params={"limit": 100, "detail": "true"}, headers=headers,
                         timeout=5).json()
    second = requests.get(url, params={"limit": 1000, "startingFrom": first["next"]},
                          headers=headers, timeout=5).json()

    assert len(first["data"]) == 100 and "sourceMapping" in first["data"][0]["metadata"]
    assert len(second["data"]) == 200 and second["next"] is None


def test_the_simulator_serves_jobs_and_404s_unknown_ones(simulator):
    url = f"{simulator.base_url}/api/v1/environments/e/jobs/"
    headers = {"Authorization": "Bearer sim-token"}

    assert requests.get(url + "101", headers=headers, timeout=5).json()["name"] == "Daily marts"
    assert requests.get(url + "999", headers=headers, timeout=5).status_code == 404


def test_the_simulator_can_hold_ten_thousand_nodes():
    nodes = nodes_for("big", 10_000)
    assert len(nodes) == 10_000
    assert {n.location for n in nodes} == {"SOURCES", "STAGING", "MART", "REPORTING"}


@pytest.mark.parametrize("include,exclude", [
    ("+{ location: MART name: FCT_* }", ""),
    ("{ STG_TABLE_0000* }+ AND { location: REPORTING }", ""),
    ("({ nodeType: Fact } OR { nodeType: Dimension }) AND +{ RPT_VIEW_00001 }", ""),
    ("", "+{ location: MART }"),
    ('{ location: staging name: "stg_orders" } || { A || B }', "{ * }"),
])
def test_the_simulator_picks_the_nodes_the_preview_predicts(include, exclude):
    # Two independent evaluators (the simulator's and runs.selectors) on the same DAG.
    nodes = nodes_for("env", 300)
    built = Catalogue.from_records(
        NodeRecord(n.id, n.name, n.location, n.node_type, n.depends_on) for n in nodes)

    expected = set(preview(built, include, exclude).node_ids)

    assert {n.id for n in select(nodes, include, exclude)} == expected


def test_a_simulated_run_reports_the_nodes_its_selectors_pick(simulator):
    run = simulator.state.start_run({"environmentID": "env",
                                     "includeNodesSelector": "+{ name: FCT_REVENUE }"}, {})
    assert set(run.nodes) == {"FCT_REVENUE", "FCT_ORDERS", "STG_ORDERS", "DIM_CUSTOMER",
                              "STG_CUSTOMERS", "RAW_ORDERS", "RAW_CUSTOMERS"}
    job_run = simulator.state.start_run({"environmentID": "env", "jobID": "101"}, {})
    assert all(name.startswith("FCT_") for name in job_run.nodes)
    # Job 1 has no selectors: the whole environment, as Coalesce refreshes it.
    everything = simulator.state.start_run({"environmentID": "env", "jobID": "1"}, {})
    assert everything.nodes == tuple(n.name for n in nodes_for("env", 300))
