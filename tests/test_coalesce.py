"""Tests for runs.coalesce, the only module that talks to Coalesce.

HTTP is mocked at the boundary with `responses` (an unregistered URL raises ConnectionError,
so nothing reaches the network), except two tests that use a real local socket to check
urllib3's retry policy. No database is needed.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
import urllib3.util.connection
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from runs.coalesce import (
    MAX_RESPONSE_BYTES,
    RESULTS_MAX_BYTES,
    USER_AGENT,
    CoalesceClient,
    CoalesceError,
    FailureKind,
    RunPage,
    RunSummary,
    StartedRun,
)
from tests.openapi import openapi_example

BASE = "https://app.coalescesoftware.io"
START_URL = f"{BASE}/scheduler/startRun"
RUNS_URL = f"{BASE}/api/v1/runs"
TOKEN = "tok_live_0123456789abcdefXYZ"
PASSWORD = "s3cret-Snowflake-pass"
PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabcdefghijklmnop\n"
    "-----END PRIVATE KEY-----"
)
BODY = {
    "runDetails": {"environmentID": "4", "jobID": "3", "parallelism": 16},
    "userCredentials": {
        "snowflakeAuthType": "Basic",
        "snowflakeUsername": "SVC_USER",
        "snowflakePassword": PASSWORD,
        "snowflakeWarehouse": "WH",
        "snowflakeRole": "TRANSFORMER",
    },
    "parameters": {"MY_PARAM": "value"},
}
LIST_QUERY = {"limit": "1", "orderBy": "id", "orderByDirection": "desc", "detail": "false"}


@pytest.fixture
def client() -> CoalesceClient:
    # Trailing slash on purpose: the client must strip it before joining paths.
    return CoalesceClient(BASE + "/", TOKEN, connect_timeout=5, read_timeout=30)


def start_error(client: CoalesceClient, body: dict | None = None) -> CoalesceError:
    with pytest.raises(CoalesceError) as info:
        client.start_run(body or BODY)
    return info.value


def add_start(**kwargs) -> None:
    responses.add(responses.POST, START_URL, **kwargs)


# -- success and what goes over the wire ----------------------------------------------------


@responses.activate
def test_it_starts_a_run_and_returns_the_run_counter(client):
    add_start(json={"runCounter": 42}, match=[matchers.json_params_matcher(BODY)])

    assert client.start_run(BODY) == StartedRun(run_counter=42)
    assert len(responses.calls) == 1


@responses.activate
def test_it_sends_the_exact_headers(client):
    add_start(
        json={"runCounter": 1},
        match=[
            matchers.header_matcher(
                {
                    "Authorization": f"Bearer {TOKEN}",
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                }
            ),
            matchers.json_params_matcher(BODY),
        ],
    )

    client.start_run(BODY)

    assert USER_AGENT.startswith("coalesce-refresh-dashboard/")


@responses.activate
def test_it_passes_an_explicit_timeout_and_streams(client):
    add_start(json={"runCounter": 1})

    client.start_run(BODY)

    kwargs = responses.calls[0].request.req_kwargs
    assert kwargs["timeout"] == (5.0, 30.0)
    # Streaming is what lets the client stop reading at the size cap.
    assert kwargs["stream"] is True


@responses.activate
def test_it_takes_default_timeouts_from_settings(settings):
    settings.COALESCE_CONNECT_TIMEOUT = 2
    settings.COALESCE_READ_TIMEOUT = 7
    add_start(json={"runCounter": 1})

    CoalesceClient(BASE, TOKEN).start_run(BODY)

    assert responses.calls[0].request.req_kwargs["timeout"] == (2.0, 7.0)


@responses.activate
def test_it_accepts_a_numeric_string_run_counter(client):
    add_start(json={"runCounter": "12"})

    assert client.start_run(BODY).run_counter == 12


def test_it_builds_the_run_link(client):
    assert client.run_link(7) == "https://app.coalescesoftware.io/runs/7"


# -- error statuses -------------------------------------------------------------------------


@responses.activate
def test_it_reports_a_400_with_the_error_envelope(client):
    envelope = {"error": {"errorString": "Invalid environmentID", "errorDetail": "no env 4"}}
    add_start(status=400, json=envelope)

    error = start_error(client)

    assert error.kind == FailureKind.REJECTED
    assert error.status_code == 400
    assert error.error_string == "Invalid environmentID"
    assert error.error_detail == "no env 4"
    assert error.raw_body == ""
    assert error.may_have_started is False
    assert str(error) == "Coalesce rejected the request (HTTP 400): Invalid environmentID."


@responses.activate
def test_it_tolerates_an_envelope_without_error_detail(client):
    add_start(status=400, json={"error": {"errorString": "Bad selector"}})

    error = start_error(client)

    assert (error.error_string, error.error_detail) == ("Bad selector", "")


@responses.activate
def test_it_keeps_the_raw_body_of_a_json_error_without_envelope(client):
    add_start(status=404, json={"message": "Not Found"})

    error = start_error(client)

    assert error.kind == FailureKind.REJECTED
    assert error.error_string == ""
    assert '"message": "Not Found"' in error.raw_body


@responses.activate
def test_it_reports_a_401(client):
    text = "401: Unable to authenticate, please ensure your token is valid."
    add_start(status=401, json={"error": {"errorString": text, "errorDetail": text}})

    error = start_error(client)

    assert error.kind == FailureKind.UNAUTHORIZED
    assert error.status_code == 401
    assert error.message.startswith(
        "Coalesce did not accept the access token (HTTP 401): 401: Unable to authenticate"
    )
    assert error.may_have_started is False


@responses.activate
def test_it_reports_a_403(client):
    add_start(status=403, json={"error": {"errorString": "Forbidden"}})

    error = start_error(client)

    assert error.kind == FailureKind.UNAUTHORIZED
    assert "HTTP 403" in error.message


@responses.activate
def test_it_reports_a_429_with_retry_after_seconds(client):
    add_start(status=429, headers={"Retry-After": "120"}, json={"error": {"errorString": "slow"}})

    error = start_error(client)

    assert error.kind == FailureKind.RATE_LIMITED
    assert error.retry_after == 120.0
    assert "Try again in 120 s" in error.message


@responses.activate
def test_it_reports_a_429_with_retry_after_as_http_date(client):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    add_start(status=429, headers={"Retry-After": when})

    error = start_error(client)

    assert 80 <= error.retry_after <= 91


@responses.activate
def test_it_reports_a_429_without_retry_after(client):
    add_start(status=429)

    error = start_error(client)

    assert error.retry_after is None
    assert "Try again in a minute" in error.message


@responses.activate
def test_it_scrubs_and_truncates_an_html_500_page(client):
    page = (
        "<html><body><h1>Internal Server Error</h1><pre>"
        f"Authorization: Bearer {TOKEN}\n{PEM}\npassword was {PASSWORD}\n"
        + "x" * 5000
        + "</pre></body></html>"
    )
    add_start(status=500, body=page, content_type="text/html")

    error = start_error(client)

    assert error.kind == FailureKind.UNAVAILABLE
    assert error.status_code == 500
    assert error.message == "Coalesce is unavailable (HTTP 500). Try again later."
    assert error.raw_body.startswith("<html><body><h1>Internal Server Error</h1>")
    assert len(error.raw_body) == 2000
    for secret in (TOKEN, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "abcdefghijklmnop", PASSWORD):
        assert secret not in error.raw_body
    assert "[redacted]" in error.raw_body
    assert error.may_have_started is False


@pytest.mark.parametrize("status", [502, 503])
@responses.activate
def test_it_reports_bad_gateway_and_unavailable(client, status):
    add_start(status=status, body="upstream error", content_type="text/plain")

    error = start_error(client)

    assert error.kind == FailureKind.UNAVAILABLE
    assert error.status_code == status
    assert error.raw_body == "upstream error"
    assert error.may_have_started is False


@responses.activate
def test_it_warns_that_a_run_may_have_started_on_a_gateway_timeout(client):
    add_start(status=504, body="gateway timeout")

    error = start_error(client)

    # The gateway gave up waiting; Coalesce behind it may still have started the run.
    assert error.kind == FailureKind.UNAVAILABLE
    assert error.may_have_started is True
    assert "check Coalesce before starting it again" in error.message


@responses.activate
def test_it_scrubs_credentials_that_coalesce_echoes(client):
    add_start(
        status=400,
        json={"error": {"errorString": f"login failed for pass {PASSWORD}", "errorDetail": PEM}},
    )

    error = start_error(client)

    assert PASSWORD not in error.error_string
    assert PASSWORD not in error.message
    assert "MIIEv" not in error.error_detail


# -- transport failures ---------------------------------------------------------------------


@responses.activate
def test_it_reports_a_read_timeout_as_possibly_started(client):
    add_start(body=requests.exceptions.ReadTimeout("read timed out"))

    error = start_error(client)

    assert error.kind == FailureKind.TIMEOUT
    assert error.may_have_started is True
    assert error.status_code is None
    assert error.message == (
        "Coalesce did not answer within 30 s. "
        "The run may have started: check Coalesce before starting it again."
    )


@responses.activate
def test_it_reports_a_refused_connection_as_nothing_sent(client):
    refused = NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    add_start(body=requests.ConnectionError(MaxRetryError(None, START_URL, refused)))

    error = start_error(client)

    assert error.kind == FailureKind.CONNECT_FAILED
    assert error.may_have_started is False
    assert error.message.startswith(
        "Could not connect to Coalesce at app.coalescesoftware.io: connection refused."
    )


@responses.activate
def test_it_reports_a_connect_timeout_as_nothing_sent(client):
    add_start(body=requests.exceptions.ConnectTimeout("connect timed out"))

    error = start_error(client)

    assert error.kind == FailureKind.CONNECT_FAILED
    assert "no connection within 5 s" in error.message
    assert error.may_have_started is False


@responses.activate
def test_it_reports_a_dropped_connection_as_outcome_unknown(client):
    dropped = ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )
    add_start(body=requests.ConnectionError(dropped))

    error = start_error(client)

    assert error.kind == FailureKind.TIMEOUT
    assert error.may_have_started is True
    assert "dropped before it answered" in error.message


@responses.activate
def test_it_reports_malformed_json(client):
    add_start(body="{not json", content_type="application/json")

    error = start_error(client)

    assert error.kind == FailureKind.BAD_RESPONSE
    assert error.status_code == 200
    assert error.raw_body == "{not json"
    # A 2xx means Coalesce probably accepted the run even though we cannot read it.
    assert error.may_have_started is True


@responses.activate
def test_it_reports_a_200_without_run_counter(client):
    add_start(json={"status": "ok"})

    error = start_error(client)

    assert error.kind == FailureKind.BAD_RESPONSE
    assert "no integer runCounter" in error.message
    assert error.may_have_started is True


@pytest.mark.parametrize("value", [True, False, 1.5, None, "12a", -3, [1]])
@responses.activate
def test_it_rejects_a_run_counter_that_is_not_an_integer(client, value):
    add_start(json={"runCounter": value})

    error = start_error(client)

    assert error.kind == FailureKind.BAD_RESPONSE
    assert error.may_have_started is True


@responses.activate
def test_it_refuses_an_oversized_body(client):
    add_start(body=b'{"runCounter": 1, "pad": "' + b"x" * MAX_RESPONSE_BYTES + b'"}')

    error = start_error(client)

    assert error.kind == FailureKind.BAD_RESPONSE
    assert "larger than 1 MiB" in error.message
    assert len(error.raw_body) == 2000


@responses.activate
def test_it_does_not_follow_a_redirect(client):
    add_start(status=302, headers={"Location": "https://elsewhere.example/steal"})

    error = start_error(client)

    assert error.kind == FailureKind.BAD_RESPONSE
    assert error.status_code == 302
    assert error.may_have_started is False
    # Only the original request: following it would have sent the token elsewhere.
    assert len(responses.calls) == 1


# -- test_connection ------------------------------------------------------------------------


@responses.activate
def test_it_tests_the_connection(client):
    responses.add(
        responses.GET,
        RUNS_URL,
        json={"limit": 1, "orderBy": "id", "orderByDirection": "desc", "data": []},
        match=[
            matchers.query_param_matcher(LIST_QUERY),
            matchers.header_matcher(
                {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
            ),
        ],
    )

    assert client.test_connection() is None
    assert "Content-Type" not in responses.calls[0].request.headers


@responses.activate
def test_it_reports_a_401_when_testing_the_connection(client):
    responses.add(
        responses.GET,
        RUNS_URL,
        status=401,
        json={"error": {"errorString": "401: Unable to authenticate"}},
        match=[matchers.query_param_matcher(LIST_QUERY)],
    )

    with pytest.raises(CoalesceError) as info:
        client.test_connection()

    assert info.value.kind == FailureKind.UNAUTHORIZED
    assert info.value.error_string == "401: Unable to authenticate"


@responses.activate
def test_it_rejects_a_connection_test_answer_that_is_not_a_run_list(client):
    responses.add(responses.GET, RUNS_URL, body="<html>login</html>")

    with pytest.raises(CoalesceError) as info:
        client.test_connection()

    assert info.value.kind == FailureKind.BAD_RESPONSE
    # A GET cannot start anything.
    assert info.value.may_have_started is False


# -- secrets and logging --------------------------------------------------------------------


def test_it_keeps_the_token_out_of_repr(client):
    assert TOKEN not in repr(client)
    assert "app.coalescesoftware.io" in repr(client)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 400, "json": {"error": {"errorString": f"bad token {TOKEN}"}}},
        {"status": 401, "json": {"error": {"errorString": f"Bearer {TOKEN} invalid"}}},
        {"status": 500, "body": f"token={TOKEN}"},
        {"status": 429, "body": TOKEN},
        {"body": TOKEN},
        {"body": requests.exceptions.ReadTimeout(f"Bearer {TOKEN}")},
        {"body": requests.ConnectionError(f"failed with {TOKEN}")},
    ],
)
@responses.activate
def test_it_keeps_the_token_out_of_every_error(client, kwargs):
    add_start(**kwargs)

    error = start_error(client)

    for text in (str(error), repr(error), error.error_string, error.error_detail, error.raw_body):
        assert TOKEN not in text


@responses.activate
def test_it_logs_one_line_without_secrets_or_body(client, caplog):
    caplog.set_level(logging.INFO, logger="runs.coalesce")
    add_start(json={"runCounter": 5})

    client.start_run(BODY)

    records = [r for r in caplog.records if r.name == "runs.coalesce"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert message.startswith("POST /scheduler/startRun -> 200 in ")
    assert message.endswith(" ms")
    for secret in (TOKEN, PASSWORD, "SVC_USER"):
        assert secret not in caplog.text


# -- the retry policy against a real socket -------------------------------------------------


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


@pytest.fixture
def hang_up_server(no_proxy) -> Iterator[tuple[str, list[bytes]]]:
    """A local server that reads each request in full, then closes without answering."""
    received: list[bytes] = []

    class HangUp(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HangUp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_it_does_not_resend_a_start_after_the_connection_drops(hang_up_server):
    url, received = hang_up_server
    client = CoalesceClient(url, TOKEN, connect_timeout=0.5, read_timeout=2)

    error = start_error(client)

    assert error.kind == FailureKind.TIMEOUT
    assert error.may_have_started is True
    # The request reached the server once; urllib3 must not have sent it again.
    assert len(received) == 1


def test_it_retries_the_connect_only_and_reports_a_closed_port(no_proxy, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now, so every connect is refused.
    attempts: list[tuple] = []
    real_create_connection = urllib3.util.connection.create_connection

    def counting_create_connection(address, *args, **kwargs):
        attempts.append(address)
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting_create_connection)
    client = CoalesceClient(f"http://127.0.0.1:{port}", TOKEN, connect_timeout=0.2, read_timeout=1)

    started = time.monotonic()
    error = start_error(client)

    assert time.monotonic() - started < 2
    assert error.kind == FailureKind.CONNECT_FAILED
    assert error.may_have_started is False
    assert error.message.startswith(f"Could not connect to Coalesce at 127.0.0.1:{port}")
    # One attempt plus the two connect retries: safe because nothing was sent.
    assert len(attempts) == 3


# -- list runs, run detail, results, status, cancel and rerun (docs/coalesce-api.md §4-5) -----

CANCEL_URL = f"{BASE}/scheduler/cancelRun"
RERUN_URL = f"{BASE}/scheduler/rerun"
RESULTS_URL = f"{BASE}/api/v1/runs/7/results"
ENV = "4"
RERUN_BODY = {
    "runDetails": {"runID": "7", "forceIgnoreWorkspaceStatus": False},
    "userCredentials": BODY["userCredentials"],
    "parameters": {"MY_PARAM": "value"},
}


def list_query(**overrides: str) -> dict[str, str]:
    """The query list_runs sends with its defaults, as strings."""
    query = {
        "environmentID": ENV,
        "orderBy": "id",
        "orderByDirection": "asc",
        "limit": "1000",
        "detail": "false",
        "runType": "refresh",
    }
    query.update(overrides)
    return {key: value for key, value in query.items() if value is not None}


def run_item(run_id: int, status: str = "completed", **fields) -> dict:
    return {
        "id": run_id,
        "runType": "refresh",
        "runStatus": status,
        "runStartTime": "2024-05-01T10:00:00Z",
        "environmentID": ENV,
        **fields,
    }


def run_list(*items: dict, **extra) -> dict:
    return {"limit": 1000, "orderBy": "id", "orderByDirection": "asc", "data": list(items), **extra}


def add_list(query: dict[str, str], **kwargs) -> None:
    responses.add(responses.GET, RUNS_URL, match=[matchers.query_param_matcher(query)], **kwargs)


def api_error(call) -> CoalesceError:
    with pytest.raises(CoalesceError) as info:
        call()
    return info.value


@responses.activate
def test_it_lists_runs_with_the_exact_query_and_parses_run_info(client):
    # The documented example (RunInfo objects, as with detail=true), with dates kept as text.
    example = openapi_example("RunsResponse")
    example["data"][1].update(id="7", reRunID="6", runStatus="someNewStatus")
    add_list(list_query(detail="true"), json=example)

    page = client.list_runs(environment_id=ENV, detail=True)

    assert page == RunPage(
        runs=[
            RunSummary(
                run_counter=6,
                status="canceled",
                run_type="deploy",
                start_time=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
                end_time=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
                environment_id="environmentID",
                rerun_of=None,  # "reRunID" is not a number
                failure_reason="runFailureReason",
                job_id="2",
                include_selector="includeNodesSelector",
                exclude_selector="excludeNodesSelector",
                parallelism=5,
            ),
            RunSummary(
                run_counter=7,  # the Postman fixture's string id is accepted
                status="someNewStatus",  # unknown statuses pass through
                run_type="deploy",
                start_time=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
                end_time=datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC),
                environment_id="environmentID",
                rerun_of=6,
                failure_reason="runFailureReason",
                job_id="2",
                include_selector="includeNodesSelector",
                exclude_selector="excludeNodesSelector",
                parallelism=5,
            ),
        ],
        next=None,
    )


@responses.activate
def test_it_sends_the_cursor_and_leaves_out_an_unset_run_type(client):
    query = list_query(
        orderBy="runStartTime",
        orderByDirection="desc",
        limit="25",
        startingFrom="2024-05-01T10:00:00Z",
        runType=None,
    )
    add_list(query, json=run_list(run_item(3), next=2))

    page = client.list_runs(
        environment_id=ENV,
        order_by="runStartTime",
        direction="desc",
        starting_from="2024-05-01T10:00:00Z",
        limit=25,
        run_type=None,
    )

    assert [run.run_counter for run in page.runs] == [3]
    assert page.next == 2


@responses.activate
def test_it_parses_a_sparse_summary_leniently(client, caplog):
    sparse = {"id": 9, "runStartTime": "garbage", "runEndTime": "2024-05-01T12:00:00+02:00"}
    add_list(list_query(), json=run_list(sparse, {"runStatus": "failed"}, "junk", next=""))

    page = client.list_runs(environment_id=ENV)

    assert page.next is None
    assert page.runs == [
        RunSummary(
            run_counter=9,
            status="",
            run_type="",
            start_time=None,
            end_time=datetime(2024, 5, 1, 10, tzinfo=UTC),
            environment_id="",
            rerun_of=None,
            failure_reason="",
            job_id="",
            include_selector="",
            exclude_selector="",
            parallelism=None,
        )
    ]
    assert "skipped 2 item(s) without an integer id" in caplog.text


@responses.activate
def test_it_scrubs_the_failure_reason(client):
    item = run_item(5, "failed", runFailureReason=f"login failed, password={PASSWORD}")
    add_list(list_query(), json=run_list(item))

    (run,) = client.list_runs(environment_id=ENV).runs

    assert PASSWORD not in run.failure_reason
    assert "[redacted]" in run.failure_reason


@pytest.mark.parametrize("data", [None, "runs", {"id": 1}])
@responses.activate
def test_it_rejects_a_run_list_without_a_data_list(client, data):
    add_list(list_query(), json={"limit": 1000, "data": data})

    error = api_error(lambda: client.list_runs(environment_id=ENV))

    assert error.kind == FailureKind.BAD_RESPONSE
    assert error.may_have_started is False


@responses.activate
def test_it_gets_node_results(client):
    failing = {
        "name": "Insert STG_ORDERS",
        "sql": "INSERT ...",
        "status": "Failed",
        "success": False,
        "isRunning": False,
        "error": {"errorString": "Object does not exist", "errorDetail": ""},
    }
    payload = {
        "data": [
            {"nodeID": "n1", "name": "STG_NATION", "isRunning": False, "queryResults": []},
            {"nodeID": "n2", "name": "STG_ORDERS", "isRunning": False, "queryResults": [failing]},
        ]
    }
    responses.add(
        responses.GET, RESULTS_URL, json=payload, match=[matchers.query_param_matcher({})]
    )

    nodes = client.get_results(7)

    assert [(n.node_id, n.status, n.error) for n in nodes] == [
        ("n1", "completed", ""),
        ("n2", "failed", "Object does not exist"),
    ]


@responses.activate
def test_it_accepts_results_as_a_bare_list(client):
    responses.add(responses.GET, RESULTS_URL, json=[{"nodeID": "n1", "runState": "odd"}])

    assert [n.status for n in client.get_results(7)] == ["odd"]


@responses.activate
def test_it_reads_the_results_of_a_whole_large_environment_past_the_usual_cap(client):
    # 10,000 nodes of a whole-environment run: several MiB, over the cap of other calls.
    stage = {"name": "Insert", "sql": "INSERT INTO T SELECT * FROM S " + "x" * 400,
             "success": True, "isRunning": False}
    payload = {"data": [{"nodeID": f"n{i}", "name": f"NODE_{i}", "isRunning": False,
                         "queryResults": [stage]} for i in range(10_000)]}
    responses.add(responses.GET, RESULTS_URL, json=payload)

    nodes = client.get_results(7)

    assert len(nodes) == 10_000 and nodes[-1].name == "NODE_9999"


@responses.activate
def test_it_still_refuses_results_past_their_own_cap(client):
    responses.add(responses.GET, RESULTS_URL,
                  body=b'{"data": [], "pad": "' + b"x" * RESULTS_MAX_BYTES + b'"}')

    error = api_error(lambda: client.get_results(7))

    assert error.kind == FailureKind.BAD_RESPONSE and "larger than 64 MiB" in error.message


@pytest.mark.parametrize("body", [{"data": None}, {"message": "hi"}, "text", 3])
@responses.activate
def test_it_rejects_results_without_a_list(client, body):
    responses.add(responses.GET, RESULTS_URL, json=body)

    assert api_error(lambda: client.get_results(7)).kind == FailureKind.BAD_RESPONSE


@responses.activate
def test_it_cancels_a_run(client):
    responses.add(
        responses.POST,
        CANCEL_URL,
        status=204,
        match=[
            matchers.json_params_matcher({"runID": 7, "orgID": "org-1", "environmentID": ENV}),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
    )

    assert client.cancel_run(run_counter=7, org_id="org-1", environment_id=ENV) is None
    # runID goes over the wire as an integer (docs/coalesce-api.md §2.5).
    assert b'"runID": 7' in responses.calls[0].request.body


@responses.activate
def test_it_accepts_any_2xx_to_a_cancel_and_leaves_out_an_empty_org(client):
    responses.add(
        responses.POST,
        CANCEL_URL,
        json={"ok": True},
        match=[matchers.json_params_matcher({"runID": 7, "environmentID": ENV})],
    )

    client.cancel_run(run_counter=7, org_id="", environment_id=ENV)


@responses.activate
def test_it_reports_a_rejected_cancel(client):
    responses.add(
        responses.POST, CANCEL_URL, status=400, json={"error": {"errorString": "Run not running"}}
    )

    error = api_error(lambda: client.cancel_run(run_counter=7, org_id="o", environment_id=ENV))

    assert error.kind == FailureKind.REJECTED
    assert error.error_string == "Run not running"
    assert error.may_have_started is False


@responses.activate
def test_it_does_not_call_a_cancel_timeout_a_possible_start(client):
    responses.add(responses.POST, CANCEL_URL, body=requests.exceptions.ReadTimeout("slow"))

    error = api_error(lambda: client.cancel_run(run_counter=7, org_id="o", environment_id=ENV))

    assert error.kind == FailureKind.TIMEOUT
    assert error.may_have_started is False


@responses.activate
def test_it_sends_a_rerun_body_as_given(client):
    responses.add(
        responses.POST,
        RERUN_URL,
        json={"runCounter": 8},
        match=[matchers.json_params_matcher(RERUN_BODY)],
    )

    assert client.rerun(RERUN_BODY) == StartedRun(run_counter=8)
    assert len(responses.calls) == 1


@responses.activate
def test_it_warns_that_a_rerun_may_have_started_on_a_timeout(client):
    responses.add(responses.POST, RERUN_URL, body=requests.exceptions.ReadTimeout("slow"))

    error = api_error(lambda: client.rerun(RERUN_BODY))

    assert error.kind == FailureKind.TIMEOUT
    assert error.may_have_started is True


@responses.activate
def test_it_scrubs_credentials_a_rerun_error_echoes(client):
    responses.add(
        responses.POST,
        RERUN_URL,
        status=400,
        json={"error": {"errorString": f"bad login {PASSWORD}", "errorDetail": TOKEN}},
    )

    error = api_error(lambda: client.rerun(RERUN_BODY))

    for text in (error.message, error.error_string, error.error_detail):
        assert PASSWORD not in text
        assert TOKEN not in text


# -- 429: never retried in the client; the caller decides -----------------------------------


@pytest.mark.parametrize(
    ("url", "call"),
    [
        (START_URL, lambda c: c.start_run(BODY)),
        (RERUN_URL, lambda c: c.rerun(RERUN_BODY)),
        (CANCEL_URL, lambda c: c.cancel_run(run_counter=7, org_id="o", environment_id=ENV)),
    ],
)
@responses.activate
def test_it_never_retries_a_rate_limited_post(client, url, call):
    responses.add(responses.POST, url, status=429, headers={"Retry-After": "1"})
    responses.add(responses.POST, url, json={"runCounter": 1})

    error = api_error(lambda: call(client))

    assert error.kind == FailureKind.RATE_LIMITED
    assert error.retry_after == 1.0
    assert len(responses.calls) == 1


@responses.activate
def test_it_never_retries_a_rate_limited_get(client):
    responses.add(responses.GET, RUNS_URL, status=429, headers={"Retry-After": "1"})
    responses.add(responses.GET, RESULTS_URL, status=429, headers={"Retry-After": "1"})

    assert api_error(client.test_connection).kind == FailureKind.RATE_LIMITED
    assert api_error(lambda: client.get_results(7)).kind == FailureKind.RATE_LIMITED
    assert len(responses.calls) == 2


@responses.activate
def test_it_logs_each_get_without_its_query(client, caplog):
    caplog.set_level(logging.INFO, logger="runs.coalesce")
    add_list(list_query(environmentID="secret-env-name"), json=run_list())

    client.list_runs(environment_id="secret-env-name")

    (record,) = [r for r in caplog.records if r.name == "runs.coalesce"]
    assert record.getMessage().startswith("GET /api/v1/runs -> 200 in ")
    assert "secret-env-name" not in caplog.text
