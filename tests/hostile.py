"""A hostile Coalesce stand-in for the security suite: a real HTTP server on 127.0.0.1 that
echoes the secrets it receives back in every answer, plain and encoded, and answers odd
values on request.

It remembers the API token (from the Authorization header) and the Snowflake secrets (from
each startRun body). What it does depends on the environment ID it is sent:
- `echo-json`: startRun answers 400 with an error envelope quoting the secrets;
- `echo-raw`: startRun answers 500 with a text page quoting them;
- `bigcounter`: startRun answers a runCounter of 10**23;
- `farfuture`, `farpast`, `longstatus`: the listing gives the run a start time in year
  9999 or year 1, or a status longer than any column;
- `huge`: detailed listings are larger than 1 MiB, whatever the page size;
- anything else: the run is accepted and, in the listing, has failed.
Listings quote the secrets in `runFailureReason`, and node results in their errors.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

SECRET_KEYS = ("snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass")


def encodings(secret: str) -> dict[str, str]:
    """The forms of `secret` an echo may take, by name (what the suite searches for)."""
    forms = {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "upper-cased": secret.upper(),
        "base64": base64.b64encode(secret.encode()).decode(),
        "json-escaped": json.dumps(secret)[1:-1],
    }
    if "-----BEGIN" in secret:
        lines = [line for line in secret.splitlines() if line and not line.startswith("-----")]
        forms.update({f"PEM line {i}": line for i, line in enumerate(lines[:-1], start=1)})
    return forms


def echo(secrets: list[str]) -> str:
    return " | ".join(form for secret in secrets for form in encodings(secret).values())


@dataclass
class HostileState:
    secrets: list[str] = field(default_factory=list)  # everything received, for the tests
    by_environment: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[int, str] = field(default_factory=dict)  # runCounter -> environment ID
    started: dict[int, str] = field(default_factory=dict)  # runCounter -> start time
    requests: list[str] = field(default_factory=list)
    counters: Iterator[int] = field(default_factory=lambda: itertools.count(501))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _remember_token(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        self._remember("", token)

    def _remember(self, environment: str, secret: str) -> None:
        state = self.server.state
        if secret and secret not in state.secrets:
            state.secrets.append(secret)
        known = state.by_environment.setdefault(environment, [])
        if secret and secret not in known:
            known.append(secret)

    def _echo(self, environment: str) -> str:
        """What this environment was sent: the token(s) and its runs' Snowflake secrets.
        (Coalesce knows nothing of other environments' credentials.)"""
        state = self.server.state
        return echo(state.by_environment.get("", []) + state.by_environment.get(environment, []))

    def do_POST(self) -> None:
        state = self.server.state
        state.requests.append(f"POST {self.path}")
        self._remember_token()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        credentials = body.get("userCredentials") or {}
        environment = (body.get("runDetails") or {}).get("environmentID", "")
        for key in SECRET_KEYS:
            self._remember(environment, credentials.get(key, ""))
        if environment == "echo-json":
            return self._send(400, {"error": {"errorString": f"Bad credentials: "
                                              f"{self._echo(environment)}",
                                              "errorDetail": json.dumps(body)}})
        if environment == "echo-raw":
            return self._send(500, f"<h1>Internal error</h1><pre>{json.dumps(body)}\n"
                              f"{self._echo(environment)}</pre>", "text/html")
        if environment == "bigcounter":
            return self._send(200, '{"runCounter": 100000000000000000000000}')
        counter = next(state.counters)
        state.runs[counter] = environment
        state.started[counter] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return self._send(200, {"runCounter": counter})

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        state.requests.append(f"GET {parts.path}")
        self._remember_token()
        if parts.path == "/api/v1/runs":
            return self._listing(parse_qs(parts.query))
        if parts.path.startswith("/api/v1/runs/") and parts.path.endswith("/results"):
            counter = parts.path.split("/")[4]
            environment = state.runs.get(int(counter), "") if counter.isdigit() else ""
            said = f"Incorrect username or password was specified: '{self._echo(environment)}'"
            return self._send(200, {"data": [
                {"nodeID": "n1", "name": "STG_ORDERS", "runState": "failed",
                 "error": {"errorString": said, "errorDetail": said}},
            ]})
        return self._send(404, {"error": {"errorString": "Not found"}})

    def _listing(self, query: dict[str, list[str]]) -> None:
        state = self.server.state
        environment = query.get("environmentID", [""])[0]
        detail = query.get("detail", ["false"])[0] == "true"
        reason = f"Snowflake said: {self._echo(environment)}"
        if environment == "huge" and detail:
            reason += "x" * (1024 * 1024 + 10)
        items = []
        for counter, env in state.runs.items():
            if env != environment:
                continue
            item = {"id": counter, "runType": "refresh", "runStatus": "failed",
                    "runStartTime": state.started[counter], "environmentID": env,
                    "runFailureReason": reason}
            if env == "farfuture":
                item["runStartTime"] = "9999-12-31T23:59:59-14:00"
            elif env == "farpast":
                item["runStartTime"] = "0001-01-01T00:00:00+14:00"
            elif env == "longstatus":
                item["runStatus"] = "waitingToRunOnDedicatedWarehouseQueue"
            if detail:
                item["runDetails"] = {"environmentID": env, "parallelism": 8}
            items.append(item)
        return self._send(200, {"data": items})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HostileState


@dataclass
class HostileCoalesce:
    base_url: str
    state: HostileState


@contextmanager
def running_hostile() -> Iterator[HostileCoalesce]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = HostileState()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield HostileCoalesce(f"http://127.0.0.1:{server.server_address[1]}", server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
