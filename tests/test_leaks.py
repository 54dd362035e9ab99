"""THE leak test: no plaintext secret leaves the profile admin, whatever happens.

One scenario, run through the real admin with every log record captured at DEBUG (SQL
included): save a Basic, a KeyPair (encrypted key) and an OAuth profile, re-display forms
with errors while they hold secrets, open the changelist, change and history pages, run
"Test connection" against a Coalesce that echoes the token and a PEM in a 500 page, and
dump the database. Each test then searches one kind of output for the canaries.

Failures name the canary and the output ("key line 3 in GET /admin/..."), never the value.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass, field

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.messages import get_messages
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.models import EnvironmentProfile, Run

BASE = "https://app.coalescesoftware.io"
ADD_URL = reverse("admin:runs_environmentprofile_add")
CHANGELIST_URL = reverse("admin:runs_environmentprofile_changelist")

PASSWORD = "pw-LEAKCANARY-basic-1f2e3d"
PASSPHRASE = "pp-LEAKCANARY-keypair-4c5b6a"
WRONG_PASSPHRASE = "pp-LEAKCANARY-wrong-7d8e9f"
OAUTH_PASSWORD = "pw-LEAKCANARY-oauth-0a1b2c"
TOKENS = {
    "Basic": "tok-LEAKCANARY-basic-3e4f5a",
    "KeyPair": "tok-LEAKCANARY-keypair-6b7c8d",
    "OAuth": "tok-LEAKCANARY-oauth-9e0f1a",
}
SLICE = 20


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(private_key, passphrase: str = "") -> str:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def canaries(*pems: str) -> dict[str, str]:
    """Name -> plaintext: the typed secrets, and every 20-char slice of each key line."""
    found = {"password": PASSWORD, "passphrase": PASSPHRASE, "wrong passphrase": WRONG_PASSPHRASE}
    found["password typed for OAuth"] = OAUTH_PASSWORD
    found.update({f"{auth} token": token for auth, token in TOKENS.items()})
    for p, pem in enumerate(pems):
        lines = [line for line in pem.splitlines() if not line.startswith("-----")]
        for n, line in enumerate(lines):
            for i in range(len(line) - SLICE + 1):
                found[f"key {p} line {n} at {i}"] = line[i : i + SLICE]
    return found


def leaks(outputs: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """'<secret name> in <output name>' for each secret found; never the values."""
    return [
        f"{name} in {where}"
        for where, text in outputs.items()
        for name, value in secrets.items()
        if value in text
    ]


def profile_data(auth: str, **overrides) -> dict[str, str]:
    data = {
        "name": f"Leak {auth}",
        "base_url": BASE,
        "environment_id": "12",
        "api_token": TOKENS[auth],
        "default_job_id": "3",
        "default_parallelism": "16",
        "snowflake_auth_type": auth,
        "snowflake_username": "" if auth == "OAuth" else "SVC_LOADER",
        "snowflake_password": PASSWORD if auth == "Basic" else "",
        "private_key": "",
        "private_key_passphrase": "",
        "snowflake_warehouse": "TRANSFORMING",
        "snowflake_role": "TRANSFORMER",
        "_save": "Save",
    }
    data.update(overrides)
    return data


@dataclass(repr=False)
class Recorder:
    """The pages and messages the admin returned, by request."""

    client: Client
    responses: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def _keep(self, method: str, url: str, response) -> None:
        label = f"{method} {url} #{len(self.responses)}"
        self.responses[label] = response.content.decode()
        for hop, _ in getattr(response, "redirect_chain", []):
            self.responses[label] += f"\n[redirect {hop}]"
        self.messages += [str(m) for m in get_messages(response.wsgi_request)]

    def get(self, url: str):
        response = self.client.get(url)
        self._keep("GET", url, response)
        return response

    def post(self, url: str, data: dict):
        response = self.client.post(url, data, follow=True)
        self._keep("POST", url, response)
        return response


class RawRecords(logging.Handler):
    """Formats each record as it arrives, before any other handler's filter scrubs it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(repr=False)
class Scenario:
    """What the scenario produced; its repr is bare so a failure prints no secret."""

    run: Recorder
    profiles: list[EnvironmentProfile]
    coalesce_calls: int
    logs: dict[str, str]
    dump: str
    secrets: dict[str, str]


@pytest.fixture
def raw_records():
    handler = RawRecords()
    # The root logger and "django" (which does not propagate): first in each, so the
    # handler sees records no filter has touched.
    loggers = [logging.getLogger(), logging.getLogger("django")]
    for logger in loggers:
        logger.handlers.insert(0, handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def scenario(admin_client, key, caplog, raw_records, settings):
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    encrypted_pem = pem_of(key, PASSPHRASE)
    run = Recorder(admin_client)
    with CaptureQueriesContext(connection) as queries, responses.RequestsMock() as coalesce:
        run.get(ADD_URL)
        # Forms re-displayed with errors while they carry every kind of secret.
        run.post(ADD_URL, profile_data("Basic", snowflake_warehouse="no spaces"))
        run.post(
            ADD_URL,
            profile_data(
                "KeyPair",
                private_key=encrypted_pem,
                private_key_passphrase=PASSPHRASE,
                snowflake_role="no spaces",
            ),
        )
        run.post(
            ADD_URL,
            profile_data(
                "KeyPair",
                private_key=encrypted_pem,
                private_key_passphrase=WRONG_PASSPHRASE,
            ),
        )
        run.post(ADD_URL, profile_data("OAuth", snowflake_password=OAUTH_PASSWORD))
        # The three profiles, saved.
        run.post(ADD_URL, profile_data("Basic"))
        run.post(
            ADD_URL,
            profile_data(
                "KeyPair",
                private_key=encrypted_pem.replace("\n", "\r\n"),
                private_key_passphrase=PASSPHRASE,
            ),
        )
        run.post(ADD_URL, profile_data("OAuth"))
        profiles = list(EnvironmentProfile.objects.order_by("pk"))
        basic, keypair, _ = profiles
        # A change re-displayed with errors, then a change that saves.
        change_url = reverse("admin:runs_environmentprofile_change", args=[basic.pk])
        run.post(change_url, profile_data("Basic", base_url=f"{BASE}@evil.example"))
        change_url = reverse("admin:runs_environmentprofile_change", args=[keypair.pk])
        run.post(change_url, profile_data("KeyPair", api_token="", snowflake_role="WH_2"))
        # Every page that shows a profile.
        run.get(CHANGELIST_URL)
        for profile in profiles:
            run.get(reverse("admin:runs_environmentprofile_change", args=[profile.pk]))
            run.get(reverse("admin:runs_environmentprofile_history", args=[profile.pk]))
        # A Coalesce that echoes the token, the password and keys back in an HTML error page.
        stored_pem = keypair.get_secret("private_key")
        echo = "".join(
            f"<pre>Authorization: Bearer {t}\n{PASSWORD}\n{stored_pem}{pem_of(key)}</pre>"
            for t in TOKENS.values()
        )
        coalesce.get(
            f"{BASE}/api/v1/runs", status=500, body=f"<html>{echo}</html>", content_type="text/html"
        )
        run.post(
            CHANGELIST_URL,
            {
                "action": "test_connection",
                "_selected_action": [p.pk for p in profiles],
            },
        )
        start_runs(run, coalesce, profiles)
        coalesce_calls = len(coalesce.calls)
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    return Scenario(
        run=run,
        profiles=profiles,
        coalesce_calls=coalesce_calls,
        logs={
            "caplog": caplog.text,
            "raw log records": "\n".join(raw_records.lines),
            "captured SQL": "\n".join(q["sql"] for q in queries.captured_queries),
        },
        dump=dump.getvalue(),
        secrets=canaries(encrypted_pem, stored_pem, pem_of(key)),
    )


def start_runs(run: Recorder, coalesce, profiles) -> None:
    """Start a run on each profile through the run form, while Coalesce answers with the
    secrets echoed back: in an HTML 500 page, in a 400 envelope, and as a success. Then
    open every page and export that shows runs or the audit trail."""
    answers = iter([500, 400, 200])

    def echoing(request):
        # What a careless server could echo: the very token and credentials it was sent.
        sent = json.loads(request.body)
        echo = request.headers["Authorization"] + " " + json.dumps(sent)
        echo += "".join(f" {v}" for v in sent.get("userCredentials", {}).values())
        status = next(answers)
        if status == 500:
            return 500, {"Content-Type": "text/html"}, f"<html><pre>{echo}</pre></html>"
        if status == 400:
            body = {"error": {"errorString": echo[:300], "errorDetail": echo}}
            return 400, {}, json.dumps(body)
        return 200, {}, json.dumps({"runCounter": 77})

    coalesce.add_callback(responses.POST, f"{BASE}/scheduler/startRun", callback=echoing)
    for profile in profiles:
        run.post(reverse("runs:new"), {
            "environment": profile.pk, "job_id": "3", "parallelism": "4",
            "submit_token": str(uuid.uuid4()), "param_name": "P", "param_value": "v",
        })
    for stored in Run.objects.all():
        run.get(stored.get_absolute_url())
        run.get(reverse("runs:status", args=[stored.pk]))
    run.get(reverse("runs:list"))
    run.get(reverse("runs:charts"))
    run.get(reverse("runs:audit_log"))
    for export in (reverse("runs:export"), reverse("runs:audit_export")):
        response = run.client.get(export)
        run.responses[f"GET {export}"] = b"".join(response.streaming_content).decode()
    run.get(reverse("admin:runs_run_changelist"))
    for stored in Run.objects.all():
        run.get(reverse("admin:runs_run_change", args=[stored.pk]))


# --- the scenario did what it claims ------------------------------------------------------------


def test_it_stores_every_secret_it_then_looks_for(scenario):
    basic, keypair, oauth = scenario.profiles
    assert basic.get_secret("snowflake_password") == PASSWORD
    assert keypair.get_secret("private_key_passphrase") == PASSPHRASE
    assert keypair.private_key_encrypted is True
    assert [p.get_secret("api_token") for p in (basic, keypair, oauth)] == list(TOKENS.values())


def test_it_redisplays_five_forms_with_errors(scenario):
    pages = scenario.run.responses.values()
    assert sum('class="errornote"' in page for page in pages) == 5


def test_it_captures_sql_and_the_failed_connection_tests(scenario):
    assert "INSERT INTO" in scenario.logs["raw log records"]
    assert "django.db.backends DEBUG" in scenario.logs["raw log records"]
    assert scenario.coalesce_calls == 3 + 3  # three connection tests, three starts
    assert sum("HTTP 500" in m for m in scenario.run.messages) == 3


# --- no secret anywhere -----------------------------------------------------------------------


def test_it_keeps_secrets_out_of_every_response(scenario):
    assert leaks(scenario.run.responses, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_logs(scenario):
    assert leaks(scenario.logs, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_database_dump(scenario):
    assert leaks({"dumpdata": scenario.dump}, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_messages(scenario):
    assert leaks({"messages": "\n".join(scenario.run.messages)}, scenario.secrets) == []


def test_it_keeps_secrets_out_of_error_emails(scenario):
    sent = {f"mail {i}": m.message().as_string() for i, m in enumerate(mail.outbox)}
    assert leaks(sent, scenario.secrets) == []


def test_it_recorded_the_three_runs_it_then_searched(scenario):
    statuses = sorted(Run.objects.values_list("status", flat=True))
    assert statuses == ["rejected", "started", "unreachable"]
