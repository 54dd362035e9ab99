"""The one module that talks to Coalesce (docs/coalesce-api.md; the 2024 OpenAPI
description is in tests/data/coalesce-openapi-2024.yaml).

Everything that goes over the wire to Coalesce passes through `CoalesceClient`. It turns
every `requests` exception and every unexpected answer into a `CoalesceError` whose
`message` is fit to show a user, and returns small dataclasses instead of raw JSON.

Retries: startRun and rerun are not idempotent, so the only automatic retry is the one
urllib3 makes when a *connection* could not be opened (nothing was sent). Read timeouts,
dropped connections, 429s and error statuses are never retried here; the caller decides
(the sweep backs off per environment, a person presses the button again).

`client_for(profile)` is the one place a client is opened for an environment profile.
What this project relies on from Coalesce's API is written down in docs/coalesce-api.md.
"""

from __future__ import annotations

import enum
import http.client
import json
import logging
import math
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util.retry import Retry

from runs.coalesce.answers import (
    TEXT_LIMIT,
    JobInfo,
    RunPage,
    StartedRun,
    body_text,
    checked_run_counter,
    cursor_of,
    error_envelope,
    job_of,
    node_record_of,
    retry_after_seconds,
    run_counter_of,
    run_summary_of,
)
from runs.coalesce.signals import coalesce_called
from runs.redaction import secrets_in_use
from runs.results import NodeResult, parse_results
from runs.selectors import NodeRecord

logger = logging.getLogger("runs.coalesce")

try:
    _VERSION = metadata.version("coalesce-refresh-dashboard")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    _VERSION = "dev"
USER_AGENT = f"coalesce-refresh-dashboard/{_VERSION}"

MAX_RESPONSE_BYTES = 1024 * 1024
RAW_BODY_LIMIT = TEXT_LIMIT
_READ_CHUNK = 64 * 1024
# Only these userCredentials values are secret; the username, role and warehouse are not,
# and scrubbing them would make Coalesce's error text harder to read.
_SECRET_CREDENTIAL_KEYS = ("snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass")
_MAY_HAVE_STARTED = "The run may have started: check Coalesce before starting it again."
MAX_LIST_LIMIT = 1000
# A page of full nodes can be many MB: the cap is raised for that call only.
NODE_LIST_MAX_BYTES = 64 * 1024 * 1024
# A whole-environment run of 10,000 nodes reports 10,000 results (about 1 KB each, more
# with long errors): its answer alone may be that big.
RESULTS_MAX_BYTES = 64 * 1024 * 1024
NODE_PAGE_SIZE = 500
MAX_NODE_PAGES = 200  # 100,000 nodes; a cursor that never ends stops here
TOKEN_UNREADABLE = ("The profile's API token cannot be decrypted with the configured keys, "
                    "so nothing was sent: an admin must enter it again.")


class FailureKind(enum.StrEnum):
    """Why a Coalesce call failed. The value is stable and may be stored."""

    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    CONNECT_FAILED = "connect_failed"
    TIMEOUT = "timeout"
    BAD_RESPONSE = "bad_response"
    # Nothing left this process: the profile's secrets cannot be decrypted.
    NOT_SENT = "not_sent"


class CoalesceError(Exception):
    """A failed Coalesce call, described for the user.

    `message` never contains the token or credentials: Coalesce's own text (`error_string`,
    `error_detail`, `raw_body`) is scrubbed with `runs.redaction.scrub` before it is kept.
    `may_have_started` is True when the request may have reached Coalesce and changed
    something (a startRun with no clear answer), so the user must check before retrying.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status_code: int | None = None,
        error_string: str = "",
        error_detail: str = "",
        retry_after: float | None = None,
        raw_body: str = "",
        may_have_started: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.error_string = error_string
        self.error_detail = error_detail
        self.retry_after = retry_after
        self.raw_body = raw_body
        self.may_have_started = may_have_started

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Answer:
    status: int
    content: bytes


class _BearerAuth(AuthBase):
    # An auth object rather than a session header: requests skips ~/.netrc (which would
    # silently replace the Authorization header) when the session has auth, and the token
    # stays out of `session.headers`, which is easy to log by accident.
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<_BearerAuth [redacted]>"


def _new_session() -> requests.Session:
    """A session whose only automatic retry is reconnecting when nothing was sent.

    urllib3's Retry.increment counts ConnectTimeoutError (and its subclasses
    NewConnectionError and NameResolutionError: refused, unreachable, DNS) as a
    "connect" error: the request was never written, so retrying cannot start a second run.
    ReadTimeoutError and ProtocolError are "read" errors (read=0: never retried, and POST
    is not in the default allowed_methods anyway); TLS failures fall under "other" (0).
    status=0 and redirect=0 keep 429/5xx/3xx answers as they are.
    """
    retry = Retry(
        total=None,
        connect=2,
        read=0,
        redirect=0,
        status=0,
        other=0,
        backoff_factor=0.2,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class CoalesceClient:
    """Calls to one Coalesce deployment with one access token.

    Every call has an explicit (connect, read) timeout, does not follow redirects (a
    redirect would carry the token elsewhere), reads at most 1 MiB of response, and logs
    one INFO line (method, path, status, elapsed ms) to "runs.coalesce".
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        session: requests.Session | None = None,
        echoed_secrets: tuple[str, ...] = (),
    ) -> None:
        """`session`, when given, is used as is: its adapters decide the retry policy.
        `echoed_secrets` are scrubbed, with the token, from everything read back."""
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = float(
            settings.COALESCE_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        )
        self.read_timeout = float(
            settings.COALESCE_READ_TIMEOUT if read_timeout is None else read_timeout
        )
        self._token = token
        self._secrets = (token, *echoed_secrets)
        self._session = session if session is not None else _new_session()
        self._session.auth = _BearerAuth(token)
        self._session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        parts = urlsplit(self.base_url)
        # Only the host goes into messages: never user info, path or query string.
        self._host = parts.hostname or "the configured address"
        if parts.port:
            self._host = f"{self._host}:{parts.port}"

    def __repr__(self) -> str:
        return (
            f"CoalesceClient(base_url={self.base_url!r}, connect_timeout={self.connect_timeout:g},"
            f" read_timeout={self.read_timeout:g})"
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def __enter__(self) -> CoalesceClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def run_link(self, run_counter: int) -> str:
        """The Coalesce web page of a run (the runLink shape from runStatus)."""
        return f"{self.base_url}/runs/{int(run_counter)}"

    # sensitive_variables on the methods that hold the body: it carries the decrypted
    # credentials, and these frames' locals must not reach Django's error reports.
    @sensitive_variables()
    def start_run(self, body: dict[str, Any]) -> StartedRun:
        """POST /scheduler/startRun with `body` and return the new run's counter.

        Never retried after the request may have been sent (not even on 429). Raises
        CoalesceError; when its `may_have_started` is True (no answer, dropped connection,
        2xx without a usable runCounter) the run may exist in Coalesce.
        """
        return self._start("/scheduler/startRun", body)

    @sensitive_variables()
    def rerun(self, body: dict[str, Any]) -> StartedRun:
        """POST /scheduler/rerun with `body` (sent as given) and return the new run's counter.

        `body` is `{"runDetails": {"runID": "<failed run>"}, "userCredentials": {...}}`
        (docs/coalesce-api.md §4.1). Same semantics as `start_run`: never retried after sending, and
        `may_have_started` on the CoalesceError when the rerun may exist.
        """
        return self._start("/scheduler/rerun", body)

    def cancel_run(self, *, run_counter: int, org_id: str, environment_id: str) -> None:
        """POST /scheduler/cancelRun `{"runID": int, "orgID", "environmentID"}`.

        Returns None on any 2xx (Coalesce documents 204, empty body); empty `org_id` /
        `environment_id` are left out (both are optional in the spec). Never retried, not
        even on 429. Raises CoalesceError; a TIMEOUT means the cancel may or may not have
        been applied, so check the run's status.
        """
        body: dict[str, Any] = {"runID": checked_run_counter(run_counter)}
        if org_id:
            body["orgID"] = org_id
        if environment_id:
            body["environmentID"] = environment_id
        with secrets_in_use(*self._secrets):
            self._call("POST", "/scheduler/cancelRun", json_body=body)

    def get_results(self, run_counter: int) -> list[NodeResult]:
        """GET /api/v1/runs/{runCounter}/results: one NodeResult per node, parsed leniently by
        `runs.results.parse_results` (unknown statuses kept, missing fields defaulted).

        The answer may be up to RESULTS_MAX_BYTES, not the 1 MiB of other calls. Raises
        CoalesceError: BAD_RESPONSE when the answer is not JSON, has no `data` list (a bare
        list is accepted) or is bigger than that, REJECTED/404 for an unknown run,
        RATE_LIMITED on a 429.
        """
        with secrets_in_use(*self._secrets):
            answer = self._call("GET", f"/api/v1/runs/{checked_run_counter(run_counter)}/results",
                                max_bytes=RESULTS_MAX_BYTES)
            data = self._json(answer, starts_run=False)
            items = data.get("data") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise self._bad_response(
                    answer, "the response is not a list of node results", starts_run=False
                )
            return parse_results(items)

    def list_runs(
        self,
        *,
        environment_id: str,
        order_by: Literal["id", "runStartTime", "runEndTime"] = "id",
        direction: Literal["asc", "desc"] = "asc",
        starting_from: str | int | None = None,
        limit: int = MAX_LIST_LIMIT,
        run_type: str | None = "refresh",
        detail: bool = False,
    ) -> RunPage:
        """GET /api/v1/runs filtered to one environment (and `run_type`, None for all).

        `starting_from` is the exclusive cursor (a run id when ordering by id); pass
        `RunPage.next` back to get the following page. Items that are not objects or have no
        integer id are skipped (and logged). Raises CoalesceError (BAD_RESPONSE when `data`
        is not a list, RATE_LIMITED on a 429).
        """
        params = {
            "environmentID": environment_id,
            "orderBy": order_by,
            "orderByDirection": direction,
            "limit": str(limit),
            "detail": "true" if detail else "false",
        }
        if run_type:
            params["runType"] = run_type
        if starting_from is not None and starting_from != "":
            params["startingFrom"] = str(starting_from)
        with secrets_in_use(*self._secrets):
            answer = self._call("GET", "/api/v1/runs", params=params)
            data = self._json_object(answer, starts_run=False)
            items = data.get("data")
            if not isinstance(items, list):
                raise self._bad_response(
                    answer, "the response is not a Coalesce run list", starts_run=False
                )
            runs = [run for item in items if (run := run_summary_of(item)) is not None]
            if len(runs) != len(items):
                logger.warning(
                    "GET /api/v1/runs: skipped %d item(s) without an integer id",
                    len(items) - len(runs),
                )
            return RunPage(runs=runs, next=cursor_of(data.get("next")))

    def list_nodes(self, environment_id: str) -> Iterator[list[NodeRecord]]:
        """GET /api/v1/environments/{id}/nodes?detail=true, one page at a time (§6.2-6.3):
        yields each page reduced to NodeRecords, so 10,000 nodes are never held as raw JSON
        at once. Sends `limit`, follows `next`; one complete answer works too. This call
        alone may read NODE_LIST_MAX_BYTES per page. Raises CoalesceError."""
        path, cursor = f"/api/v1/environments/{quote(environment_id, safe='')}/nodes", None
        for _ in range(MAX_NODE_PAGES):
            params = {"detail": "true", "limit": str(NODE_PAGE_SIZE), "orderBy": "id"}
            if cursor:
                params["startingFrom"] = str(cursor)
            with secrets_in_use(self._token):
                answer = self._call("GET", path, params=params, max_bytes=NODE_LIST_MAX_BYTES)
                data = self._json(answer, starts_run=False)
            items = data.get("data") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise self._bad_response(answer, "the response is not a node list",
                                         starts_run=False)
            del answer  # the raw page can be megabytes: keep only the records
            yield [record for item in items if (record := node_record_of(item))]
            cursor = cursor_of(data.get("next")) if isinstance(data, dict) else None
            if not cursor or not items:
                return

    def get_job(self, environment_id: str, job_id: str) -> JobInfo:
        """GET /api/v1/environments/{id}/jobs/{jobID} [uncertain, §6.4]. Raises
        CoalesceError (REJECTED with status_code 404 for an unknown job)."""
        env, job = quote(environment_id, safe=""), quote(str(job_id), safe="")
        with secrets_in_use(self._token):
            answer = self._call("GET", f"/api/v1/environments/{env}/jobs/{job}")
            return job_of(self._json_object(answer, starts_run=False), str(job_id))

    @sensitive_variables()
    def _start(self, path: str, body: dict[str, Any]) -> StartedRun:
        credentials = body.get("userCredentials")
        credentials = credentials if isinstance(credentials, dict) else {}
        secrets = [
            value
            for key in _SECRET_CREDENTIAL_KEYS
            if isinstance(value := credentials.get(key), str)
        ]
        with secrets_in_use(*self._secrets, *secrets):
            answer = self._call("POST", path, json_body=body, starts_run=True)
            data = self._json_object(answer, starts_run=True)
            counter = run_counter_of(data.get("runCounter"))
            if counter is None:
                raise self._bad_response(
                    answer, "the response has no integer runCounter", starts_run=True
                )
            return StartedRun(run_counter=counter)

    def test_connection(self) -> None:
        """Check the base URL and token with the cheapest authenticated call (list 1 run).

        Returns None when Coalesce answers with a run list; raises CoalesceError otherwise.
        A 429 is not retried: the test reports what Coalesce says right now.
        """
        params = {"limit": "1", "orderBy": "id", "orderByDirection": "desc", "detail": "false"}
        with secrets_in_use(*self._secrets):
            answer = self._call("GET", "/api/v1/runs", params=params)
            data = self._json_object(answer, starts_run=False)
            if not isinstance(data.get("data"), list):
                raise self._bad_response(
                    answer, "the response is not a Coalesce run list", starts_run=False
                )

    def get_environment(self, environment_id: str) -> dict[str, Any]:
        """GET /api/v1/environments/{environmentID} (docs/coalesce-api.md §6.1): the
        environment's description as Coalesce sends it (a JSON object).

        Raises CoalesceError: REJECTED/404 for an unknown environment, UNAUTHORIZED for a
        token that may not read it, BAD_RESPONSE when the answer is not a JSON object.
        """
        with secrets_in_use(self._token):
            path = f"/api/v1/environments/{quote(str(environment_id), safe='')}"
            answer = self._call("GET", path)
            return self._json_object(answer, starts_run=False)

    # -- transport ------------------------------------------------------------------------

    @sensitive_variables()
    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        starts_run: bool = False,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> _Answer:
        """Send one request and return its 2xx answer; raise CoalesceError otherwise.

        `starts_run` marks a request that may start a run (startRun, rerun): its unclear
        outcomes set `may_have_started`. `path` carries no query string (`params` does), so
        the log line never shows query values.
        """
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        started = time.monotonic()
        outcome = "error"
        try:
            try:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.RequestException as exc:
                error = self._transport_error(exc, starts_run=starts_run)
                outcome = error.kind.value
                raise error from exc
            try:
                outcome = str(response.status_code)
                return self._answer(response, starts_run=starts_run, max_bytes=max_bytes)
            finally:
                response.close()
        finally:
            elapsed_ms = round((time.monotonic() - started) * 1000)
            # The path only: no query string, body, headers or token.
            logger.info("%s %s -> %s in %d ms", method, path, outcome, elapsed_ms)
            # For the metrics (runs.metrics); a receiver's failure never fails the call.
            coalesce_called.send_robust(CoalesceClient, method=method, path=path,
                                        outcome=outcome)

    def _answer(self, response: requests.Response, *, starts_run: bool,
                max_bytes: int = MAX_RESPONSE_BYTES) -> _Answer:
        status = response.status_code
        try:
            content, too_big = _read_capped(response, max_bytes)
        except urllib3_exceptions.DecodeError:
            if 200 <= status < 300:
                answer = _Answer(status, b"")
                raise self._bad_response(
                    answer, "the response could not be decoded", starts_run=starts_run
                ) from None
            content, too_big = b"", False
        except (requests.RequestException, urllib3_exceptions.HTTPError, OSError) as exc:
            if status < 300:
                raise self._transport_error(exc, starts_run=starts_run) from exc
            # The status line already says what happened; only the error text is lost.
            content, too_big = b"", False
        answer = _Answer(status, content)
        if 200 <= status < 300:
            if too_big:
                raise self._bad_response(
                    answer, f"the response is larger than {max_bytes // 1024 // 1024} MiB",
                    starts_run=starts_run
                )
            return answer
        raise self._status_error(response, answer, too_big=too_big, starts_run=starts_run)

    # -- error mapping --------------------------------------------------------------------

    def _status_error(
        self, response: requests.Response, answer: _Answer, *, too_big: bool, starts_run: bool
    ) -> CoalesceError:
        status = answer.status
        envelope = None if too_big else error_envelope(answer.content)
        error_string, error_detail = envelope or ("", "")
        raw_body = "" if envelope is not None else body_text(answer.content)
        said = (error_string or error_detail).strip().rstrip(".").strip()
        if len(said) > 300:  # the full text stays in error_string / error_detail
            said = said[:300] + "…"
        detail = f": {said}" if said else ""
        fields: dict[str, Any] = {
            "status_code": status,
            "error_string": error_string,
            "error_detail": error_detail,
            "raw_body": raw_body,
        }
        if 300 <= status < 400 or status < 200:
            return CoalesceError(
                FailureKind.BAD_RESPONSE,
                f"Coalesce answered with a redirect (HTTP {status}), which is not followed:"
                " check the base URL.",
                **fields,
            )
        if status == 401:
            return CoalesceError(
                FailureKind.UNAUTHORIZED,
                f"Coalesce did not accept the access token (HTTP 401){detail}. Generate a new"
                " token in Coalesce (Deploy > Generate Access Token) and save it in settings.",
                **fields,
            )
        if status == 403:
            return CoalesceError(
                FailureKind.UNAUTHORIZED,
                f"Coalesce refused access (HTTP 403){detail}. The token's user may not have"
                " access to this project or environment.",
                **fields,
            )
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            when = f"in {math.ceil(retry_after)} s" if retry_after is not None else "in a minute"
            return CoalesceError(
                FailureKind.RATE_LIMITED,
                f"Coalesce is limiting requests (HTTP 429){detail}. Try again {when}.",
                retry_after=retry_after,
                **fields,
            )
        if status >= 500:
            # A gateway timeout means the gateway gave up waiting on Coalesce, which may
            # still have acted on the request; other 5xx answers mean it was not accepted.
            maybe = starts_run and status == 504
            advice = _MAY_HAVE_STARTED if maybe else "Try again later."
            return CoalesceError(
                FailureKind.UNAVAILABLE,
                f"Coalesce is unavailable (HTTP {status}){detail}. {advice}",
                may_have_started=maybe,
                **fields,
            )
        return CoalesceError(
            FailureKind.REJECTED,
            f"Coalesce rejected the request (HTTP {status}){detail}.",
            **fields,
        )

    def _bad_response(self, answer: _Answer, problem: str, *, starts_run: bool) -> CoalesceError:
        # A 2xx to startRun means Coalesce probably accepted the run even if we cannot read
        # its number, so the user must look before starting again.
        advice = f" {_MAY_HAVE_STARTED}" if starts_run else ""
        return CoalesceError(
            FailureKind.BAD_RESPONSE,
            f"Coalesce answered HTTP {answer.status} but {problem}.{advice}",
            status_code=answer.status,
            raw_body=body_text(answer.content),
            may_have_started=starts_run,
        )

    def _json(self, answer: _Answer, *, starts_run: bool) -> Any:
        try:
            return json.loads(answer.content)
        except ValueError:  # includes UnicodeDecodeError
            raise self._bad_response(
                answer, "the response is not JSON", starts_run=starts_run
            ) from None

    def _json_object(self, answer: _Answer, *, starts_run: bool) -> dict[str, Any]:
        data = self._json(answer, starts_run=starts_run)
        if not isinstance(data, dict):
            raise self._bad_response(
                answer, "the response is not a JSON object", starts_run=starts_run
            )
        return data

    def _transport_error(self, exc: BaseException, *, starts_run: bool) -> CoalesceError:
        """Map a requests/urllib3 exception to CONNECT_FAILED (nothing sent) or TIMEOUT."""
        chain = list(_exception_chain(exc))

        def has(*types: type[BaseException]) -> bool:
            return any(isinstance(e, types) for e in chain)

        connect_reason = None
        # Order matters: a connect timeout is certain (nothing was sent); after that, any
        # sign that the request was sent wins, because calling a possibly-started run
        # "not sent" could make the user start it twice.
        if has(requests.ConnectTimeout) or any(
            isinstance(e, urllib3_exceptions.ConnectTimeoutError)
            and not isinstance(e, urllib3_exceptions.NewConnectionError)
            for e in chain
        ):
            connect_reason = f"no connection within {self.connect_timeout:g} s"
        elif has(requests.ReadTimeout, urllib3_exceptions.ReadTimeoutError):
            advice = _MAY_HAVE_STARTED if starts_run else "Try again in a moment."
            return CoalesceError(
                FailureKind.TIMEOUT,
                f"Coalesce did not answer within {self.read_timeout:g} s. {advice}",
                may_have_started=starts_run,
            )
        elif has(
            urllib3_exceptions.ProtocolError,
            http.client.RemoteDisconnected,
            http.client.IncompleteRead,
            requests.exceptions.ChunkedEncodingError,
        ):
            return self._dropped(starts_run)
        elif has(urllib3_exceptions.NameResolutionError, socket.gaierror):
            connect_reason = "the host name could not be resolved"
        elif has(requests.exceptions.SSLError, urllib3_exceptions.SSLError, ssl.SSLError):
            connect_reason = "the secure (TLS) connection failed"
        elif has(requests.exceptions.ProxyError, urllib3_exceptions.ProxyError):
            connect_reason = "the proxy could not be reached"
        elif has(ConnectionRefusedError) or any(
            isinstance(e, urllib3_exceptions.NewConnectionError) and "refused" in str(e).lower()
            for e in chain
        ):
            connect_reason = "connection refused"
        elif has(urllib3_exceptions.NewConnectionError):
            connect_reason = "the network connection failed"
        elif has(
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.URLRequired,
        ):
            connect_reason = "the base URL is not valid"
        if connect_reason is None:
            # Unknown failure: assume the worst about whether the request was sent.
            return self._dropped(starts_run)
        return CoalesceError(
            FailureKind.CONNECT_FAILED,
            f"Could not connect to Coalesce at {self._host}: {connect_reason}."
            " Nothing was sent, so it is safe to try again.",
        )

    def _dropped(self, starts_run: bool) -> CoalesceError:
        advice = _MAY_HAVE_STARTED if starts_run else "Try again in a moment."
        return CoalesceError(
            FailureKind.TIMEOUT,
            f"The connection to Coalesce at {self._host} dropped before it answered, so the"
            f" outcome is unknown. {advice}",
            may_have_started=starts_run,
        )


# -- helpers ------------------------------------------------------------------------------


def _read_capped(response: requests.Response, cap: int = MAX_RESPONSE_BYTES
                 ) -> tuple[bytes, bool]:
    """Read at most `cap` bytes (+1 to detect more); return (content, too_big)."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = response.raw.read(min(_READ_CHUNK, cap + 1 - size), decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    content = b"".join(chunks)
    return content[:cap], size > cap


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps: args, MaxRetryError.reason, cause and context."""
    pending: list[BaseException] = [exc]
    seen: list[BaseException] = []
    while pending:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        nested = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        nested += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending.extend(nested)
