"""Tests for runs.results: parsing node-level run results leniently and storing them.

The documented shape comes from the example in Coalesce's 2024 OpenAPI description
(tests/data/coalesce-openapi-2024.yaml); the odd shapes are the ones docs/coalesce-api.md (§5.4)
says other clients meet in practice. No database or HTTP is needed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from runs.results import (
    NodeResult,
    Stage,
    failed_first,
    parse_datetime,
    parse_results,
    progress,
    results_from_json,
    results_to_json,
)
from tests.openapi import openapi_example

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:00:02.500Z"
T2 = "2024-05-01T10:00:05+00:00"


def stage(**fields: Any) -> dict[str, Any]:
    """A QueryResult that succeeded, with `fields` overriding it."""
    base = {
        "name": "Insert STG_NATION",
        "sql": "INSERT INTO STG_NATION SELECT 1",
        "status": "Success",
        "success": True,
        "isRunning": False,
        "startTime": T0,
        "endTime": T1,
        "rowsInserted": 25,
        "rowsUpdated": 0,
        "rowsDeleted": 0,
    }
    return {**base, **fields}


def node(node_id: str = "n1", name: str = "STG_NATION", **fields: Any) -> dict[str, Any]:
    base = {
        "nodeID": node_id,
        "name": name,
        "isRunning": False,
        "runState": "complete",
        "queryResults": [stage()],
    }
    return {**base, **fields}


def one(payload: Any) -> NodeResult:
    nodes = parse_results(payload)
    assert len(nodes) == 1
    return nodes[0]


# -- the documented shape -------------------------------------------------------------------


def test_it_parses_the_openapi_example():
    payload = openapi_example("RunResultsResponse")

    nodes = parse_results(payload)

    assert len(nodes) == 2
    first = nodes[0]
    assert (first.node_id, first.name) == ("nodeID", "name")
    # The render step comes first, then one stage per queryResults entry.
    assert [s.name for s in first.stages] == ["name", "name", "name"]
    assert first.stages[1] == Stage(
        name="name",
        status="status",
        success=True,
        rows_inserted=6,
        rows_updated=1,
        rows_deleted=0,
        start=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
        end=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
        duration_seconds=0.0,
        error_string="errorString",
        error_detail="errorDetail",
        sql="sql",
        is_running=True,
        has_error=True,
    )
    # Sums over the two queryResults stages, not the render step.
    assert (first.rows_inserted, first.rows_updated, first.rows_deleted) == (12, 2, 0)
    # The example carries placeholder error text on stages that say success: true;
    # success wins, so the node is not shown as failed.
    assert first.status != "failed" and not first.failed
    assert first.failed_sql == ""
    assert first.has_test_failures is False


def test_it_parses_a_successful_node_with_timings_and_rows():
    payload = {
        "data": [
            node(
                queryResults=[
                    stage(name="Create Table", rowsInserted=None, startTime=T0, endTime=T1),
                    stage(rowsInserted=25, rowsUpdated=3, startTime=T1, endTime=T2),
                ]
            )
        ]
    }

    result = one(payload)

    assert result.status == "complete"  # Coalesce's runState, unchanged
    assert result.error == ""
    assert result.failed_sql == ""
    assert result.duration_seconds == 5.0
    assert result.stages[0].duration_seconds == 2.5
    assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (25, 3, 0)
    assert not result.failed


def test_it_marks_a_node_failed_when_a_stage_did_not_succeed():
    failing = stage(
        name="Insert STG_ORDERS",
        sql="INSERT INTO STG_ORDERS SELECT * FROM MISSING",
        status="Failed",
        success=False,
        error={
            "errorString": "SQL compilation error: Object 'MISSING' does not exist",
            "errorDetail": "line 1 at position 33",
        },
    )
    payload = {"data": [node(runState="complete", queryResults=[stage(), failing])]}

    result = one(payload)

    assert result.status == "failed"
    assert result.failed
    assert result.error == "SQL compilation error: Object 'MISSING' does not exist"
    assert result.failed_sql == "INSERT INTO STG_ORDERS SELECT * FROM MISSING"
    assert result.stages[1].error_detail == "line 1 at position 33"
    assert result.stages[1].failed


def test_it_marks_a_node_failed_on_success_false_without_error_text():
    result = one({"data": [node(queryResults=[stage(success=False, error=None)])]})

    assert result.status == "failed"
    assert result.error == ""


def test_it_reports_a_running_node():
    payload = {"data": [node(isRunning=True, runState="running", queryResults=[])]}

    assert one(payload).status == "running"


def test_it_keeps_test_failures_on_a_completed_node():
    result = one({"data": [node(hasTestFailures=True)]})

    assert result.status == "complete"
    assert result.has_test_failures is True


def test_it_scrubs_credentials_echoed_in_error_text():
    secret = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    failing = stage(success=False, error={"errorString": f"bad key {secret}", "errorDetail": ""})

    result = one({"data": [node(queryResults=[failing])]})

    assert "MIIEvQIBADANBg" not in result.error
    assert "[redacted]" in result.error


# -- partial and odd answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [None, "", "oops", 42, {}, {"data": None}, {"data": "x"}, {"data": {}}, {"data": []}, []],
)
def test_it_returns_no_nodes_for_an_empty_or_odd_answer(payload):
    assert parse_results(payload) == []


def test_it_accepts_a_bare_list_and_skips_items_that_are_not_objects():
    nodes = parse_results([node("a"), "junk", None, 3, node("b")])

    assert [n.node_id for n in nodes] == ["a", "b"]


def test_it_tolerates_a_node_with_no_fields():
    result = one({"data": [{}]})

    assert result == NodeResult(node_id="", name="", status="completed", stages=[])
    assert result.duration_seconds is None
    assert result.rows_inserted is None


@pytest.mark.parametrize("query_results", [None, "oops", {"name": "x"}, 5])
def test_it_tolerates_query_results_missing_or_not_a_list(query_results):
    item = node(runState="complete")
    if query_results is None:
        del item["queryResults"]
    else:
        item["queryResults"] = query_results

    result = one({"data": [item]})

    assert result.stages == []
    assert result.status == "complete"


def test_it_tolerates_stages_with_missing_and_wrongly_typed_fields():
    odd = {
        "name": 7,
        "success": "false",  # not a boolean: unknown, not failed
        "rowsInserted": "12",
        "rowsUpdated": -1,
        "rowsDeleted": 2.0,
        "startTime": "yesterday",
        "endTime": 1714557600,
    }

    result = one({"data": [node(queryResults=[odd, "junk", {}])]})

    parsed = result.stages[0]
    assert parsed.name == "7"
    assert parsed.success is None
    assert (parsed.rows_inserted, parsed.rows_updated, parsed.rows_deleted) == (12, None, 2)
    assert (parsed.start, parsed.end, parsed.duration_seconds) == (None, None, None)
    assert parsed.status == ""
    assert len(result.stages) == 2  # "junk" skipped, {} kept
    assert result.status == "complete"


@pytest.mark.parametrize("status", ["partiallyComplete", "SKIPPED", "weird status 🙃"])
def test_it_passes_unknown_node_statuses_through_unchanged(status):
    assert one({"data": [node(runState=status)]}).status == status


def test_it_passes_unknown_stage_statuses_through_unchanged():
    result = one({"data": [node(queryResults=[stage(status="Queued-ish")])]})

    assert result.stages[0].status == "Queued-ish"


@pytest.mark.parametrize("key", ["status", "runStatus", "nodeStatus"])
def test_it_reads_the_node_status_from_mcp_style_alternatives(key):
    item = node(queryResults=[])
    del item["runState"]
    item[key] = "waitingToRun"

    assert one({"data": [item]}).status == "waitingToRun"


def test_it_defaults_the_node_status_to_completed():
    item = node()
    del item["runState"]

    assert one({"data": [item]}).status == "completed"


def test_it_reads_an_error_given_as_a_string():
    failing = stage(success=False, error="Warehouse suspended")

    result = one({"data": [node(queryResults=[failing])]})

    assert result.error == "Warehouse suspended"
    assert result.stages[0].error_string == "Warehouse suspended"
    assert result.stages[0].error_detail == ""


def test_it_counts_error_text_as_a_failure_even_when_success_is_missing():
    failing = stage(error={"errorString": "Timeout"})
    del failing["success"]

    result = one({"data": [node(queryResults=[failing])]})

    assert result.status == "failed"
    assert result.stages[0].status == "Success"  # Coalesce's own text stays


def test_it_ignores_an_empty_error_object():
    ok = stage(error={"errorString": "", "errorDetail": ""})

    assert one({"data": [node(queryResults=[ok])]}).status == "complete"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"errorMessage": "Node timed out"}, "Node timed out"),
        ({"error": {"message": "Permission denied"}}, "Permission denied"),
        ({"error": "Permission denied"}, "Permission denied"),
    ],
)
def test_it_reads_node_level_error_text_and_marks_the_node_failed(fields, expected):
    result = one({"data": [node(queryResults=[], **fields)]})

    assert result.status == "failed"
    assert result.error == expected


def test_it_uses_a_bare_message_only_as_the_text_of_a_failed_node():
    ok = one({"data": [node(message="Refreshed 25 rows")]})
    failed = one({"data": [node(runState="failed", queryResults=[], message="Out of credits")]})

    assert ok.status == "complete"
    assert ok.error == ""
    assert failed.status == "failed"
    assert failed.error == "Out of credits"


def test_it_marks_a_node_failed_when_only_its_render_step_failed():
    render = stage(name="", sql="{{ bad jinja", success=False, error={"errorString": "Render"})

    result = one({"data": [node(renderQueryResult=render)]})

    assert result.stages[0].name == "Render"
    assert result.status == "failed"
    assert result.failed_sql == "{{ bad jinja"


# -- datetimes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123Z", datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)),
        (
            "2024-05-01T12:00:00+02:00",
            datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2000-01-23T04:56:07.000+00:00", datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # no offset: UTC
        ("not a date", None),
        ("", None),
        (None, None),
        (1714557600, None),
        ({"t": 1}, None),
    ],
)
def test_it_parses_datetimes_leniently(text, expected):
    assert parse_datetime(text) == expected


# -- storage and sorting --------------------------------------------------------------------


def test_it_round_trips_through_plain_json():
    failing = stage(success=False, error={"errorString": "boom", "errorDetail": "detail"})
    nodes = parse_results(
        {"data": [node("a", queryResults=[stage(), failing], hasTestFailures=True), node("b")]}
    )

    stored = json.loads(json.dumps(results_to_json(nodes)))

    assert stored[0]["stages"][0]["start"] == "2024-05-01T10:00:00+00:00"
    assert results_from_json(stored) == nodes


def test_it_rebuilds_from_partial_or_odd_stored_json():
    assert results_from_json(None) == []
    assert results_from_json({"node_id": "a"}) == []
    rebuilt = results_from_json([{"node_id": "a", "stages": [{"name": "x"}, "junk"]}, "junk"])

    assert rebuilt == [NodeResult(node_id="a", status="completed", stages=[Stage(name="x")])]


def test_it_sorts_failed_nodes_first_and_keeps_the_order_otherwise():
    nodes = parse_results(
        {
            "data": [
                node("ok1"),
                node("tests", hasTestFailures=True),
                node("bad1", queryResults=[stage(success=False)]),
                node("ok2"),
                node("bad2", runState="Error", queryResults=[]),
            ]
        }
    )

    assert [n.node_id for n in failed_first(nodes)] == ["bad1", "bad2", "tests", "ok1", "ok2"]


# -- running is never failed (docs/coalesce-api.md §5.4) -----------------------------------


def test_it_shows_a_running_stage_with_success_false_as_running_not_failed():
    running = stage(name="Insert DIM_CUSTOMER", success=False, isRunning=True, status=None,
                    endTime=None)
    payload = {"data": [node(isRunning=False, runState=None,
                             queryResults=[stage(name="Create Table"), running])]}

    result = one(payload)

    assert result.stages[1].status == "running" and not result.stages[1].failed
    assert result.status == "running" and not result.failed
    assert result.error == ""


def test_it_still_shows_a_running_stage_with_error_text_as_failed():
    broken = stage(success=False, isRunning=True, status=None,
                   error={"errorString": "invalid identifier 'AMOUNT'"})

    result = one({"data": [node(queryResults=[broken])]})

    assert result.status == "failed"
    assert result.error == "invalid identifier 'AMOUNT'"


def test_it_shows_a_finished_stage_with_success_false_as_failed():
    result = one({"data": [node(queryResults=[stage(success=False, status=None)])]})

    assert result.status == "failed"


def test_it_counts_progress_as_done_running_and_failed():
    nodes = parse_results({"data": [
        node("a"), node("b"), node("c"),
        node("d", isRunning=True, runState=None,
             queryResults=[stage(success=False, isRunning=True, status=None)]),
        node("e", queryResults=[stage(success=False, status=None)]),
        node("f", runState="canceled"),
    ]})

    assert str(progress(nodes)) == "3 of 6 nodes done · 1 running · 1 failed"
