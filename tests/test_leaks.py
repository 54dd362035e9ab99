"""THE leak test: no plaintext secret leaves the profile admin, whatever happens.

One scenario, run through the real admin with every log record captured at DEBUG (SQL
included): save a Basic, a KeyPair (encrypted key) and an OAuth profile, re-display forms
with errors while they hold secrets, open the changelist, change and history pages, run
"Test connection" against a Coalesce that echoes the token and a PEM in a 500 page, start
runs through the form and through the JSON API (with a token made on its page) while
notifications of every event go to Slack, a signed webhook and email, and
dump the database; and one request crashes (a 500) with the decrypted credentials in its
local variables while Django's mail_admins handler is attached. The scenario runs once per
module, inside a transaction rolled back at its end, and keeps what it produced as plain text:
each test then searches one kind of output for the canaries.

Failures name the canary and the output ("key line 3 in GET /admin/..."), never the value.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import responses
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.log import AdminEmailHandler

from runs import catalogue
from runs.models import EnvironmentProfile, Run
from runs.private_keys import public_key_of
from tests.factories import leaks, pem_of, profile_form, slices

# The tests read only what the scenario kept; the mark makes pytest-django create the test
# database the module-scoped scenario writes to (and rolls back).
pytestmark = pytest.mark.django_db

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


def canaries(*pems: str, public: str = "") -> dict[str, str]:
    """Name -> plaintext: the typed secrets, and every 20-char slice of each key line,
    except slices the public key shares (the ASN.1 header naming rsaEncryption): the
    admin shows the public key on purpose."""
    found = {"password": PASSWORD, "passphrase": PASSPHRASE, "wrong passphrase": WRONG_PASSPHRASE}
    found["password typed for OAuth"] = OAUTH_PASSWORD
    found.update({f"{auth} token": token for auth, token in TOKENS.items()})
    for p, pem in enumerate(pems):
        lines = [line for line in pem.splitlines() if not line.startswith("-----")]
        for n, line in enumerate(lines):
            for i, piece in enumerate(slices(line, SLICE)):
                if piece not in public:
                    found[f"key {p} line {n} at {i}"] = piece
    return found


def profile_data(auth: str, **overrides) -> dict[str, str]:
    return profile_form(**{
        "name": f"Leak {auth}",
        "api_token": TOKENS[auth],
        "default_job_id": "3",
        "snowflake_auth_type": auth,
        "snowflake_username": "" if auth == "OAuth" else "SVC_LOADER",
        "snowflake_password": PASSWORD if auth == "Basic" else "",
        **overrides,
    })


@dataclass(repr=False)
class Recorder:
    """The pages and messages the admin returned, by request."""

    client: Client
    responses: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    api_token: str = ""  # the API token the scenario made
    notification_bodies: list[str] = field(default_factory=list)  # what destinations got

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


class Lines(logging.Handler):
    """Keeps each record, formatted with `fmt`, as it arrives."""

    def __init__(self, fmt: str) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(fmt))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(repr=False)
class Scenario:
    """What the scenario produced, as plain values (the rows are rolled back); its repr is
    bare so a failure prints no secret."""

    run: Recorder
    profiles: list[EnvironmentProfile]
    run_statuses: list[str]
    coalesce_calls: int
    logs: dict[str, str]
    crash_logs: dict[str, str]
    dump: str
    mails: list[mail.EmailMessage]
    secrets: dict[str, str]
    notification_mails: list[mail.EmailMessage] = field(default_factory=list)


@contextlib.contextmanager
def captured_logs() -> Iterator[dict[str, Lines]]:
    """Every record at DEBUG, SQL included, caught twice: raw, first in line before any other
    handler's filter scrubs it (the root logger and "django", which does not propagate); and
    last on the root logger, as pytest's caplog would see it."""
    raw = Lines("%(name)s %(levelname)s %(message)s")
    last = Lines("%(levelname)-8s %(name)s:%(filename)s:%(lineno)d %(message)s")
    root, django_logger = logging.getLogger(), logging.getLogger("django")
    loggers = [root, django_logger, logging.getLogger("django.db.backends")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in (root, django_logger):
        logger.handlers.insert(0, raw)
    root.addHandler(last)
    try:
        yield {"raw log records": raw, "caplog": last}
    finally:
        root.removeHandler(last)
        for logger in (root, django_logger):
            logger.removeHandler(raw)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def error_emails() -> Iterator[list[mail.EmailMessage]]:
    """Django's mail_admins handler on request errors, and ADMINS to send to, as a deployment
    that wants error e-mails would set them (our LOGGING leaves mail_admins out).
    Yields the list the messages sent meanwhile are added to when the block ends."""
    handler = AdminEmailHandler()  # as Django's own mail_admins: the text report
    request_logger = logging.getLogger("django.request")
    request_logger.addHandler(handler)
    sent: list[mail.EmailMessage] = []
    already = len(mail.outbox)
    try:
        with override_settings(ADMINS=[("Ops", "ops@example.com")]):
            yield sent
    finally:
        request_logger.removeHandler(handler)
        sent.extend(mail.outbox[already:])


@pytest.fixture(scope="module")
def scenario(django_db_setup, django_db_blocker, rsa_key) -> Scenario:
    """The scenario, once for the module: it replays about 40 requests. Its rows are rolled
    back at the end, so the tests search what it kept, never the database."""
    with django_db_blocker.unblock(), transaction.atomic():
        found = play(rsa_key)
        transaction.set_rollback(True)
    return found


def play(key) -> Scenario:
    encrypted_pem = pem_of(key, PASSPHRASE)
    admin = User.objects.create_superuser("admin", "admin@example.com", "admin-password")
    client = Client(raise_request_exception=False)  # a crash is a 500 page, as for a user
    client.force_login(admin)
    run = Recorder(client)
    with (
        override_settings(DEBUG=True),
        captured_logs() as logs,
        error_emails() as mails,
        CaptureQueriesContext(connection) as queries,
        responses.RequestsMock() as coalesce,
    ):
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
        crash_logs = start_runs(run, coalesce, profiles, logs)
        # Calls to Coalesce; the notifications' webhook calls (to 127.0.0.1) are apart.
        coalesce_calls = sum(BASE in call.request.url for call in coalesce.calls)
        run_statuses = sorted(Run.objects.values_list("status", flat=True))
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    return Scenario(
        run=run,
        profiles=profiles,
        run_statuses=run_statuses,
        coalesce_calls=coalesce_calls,
        logs={
            **{name: "\n".join(handler.lines) for name, handler in logs.items()},
            "captured SQL": "\n".join(q["sql"] for q in queries.captured_queries),
        },
        crash_logs=crash_logs,
        dump=dump.getvalue(),
        mails=[m for m in mails if not m.subject.startswith("Run ")],
        notification_mails=[m for m in mails if m.subject.startswith("Run ")],
        secrets={**canaries(encrypted_pem, stored_pem, pem_of(key), public=public_key_of(key)),
                 "API token": run.api_token, "API token's secret part": run.api_token[8:],
                 "Slack URL token": SLACK_URL_TOKEN, "webhook signing secret": SIGNING_SECRET},
    )


def start_runs(run: Recorder, coalesce, profiles, logs: dict[str, Lines]) -> dict[str, str]:
    """Start a run on each profile through the run form, while Coalesce answers with the
    secrets echoed back: in an HTML 500 page, in a 400 envelope, and as a success. Then one
    more on the KeyPair profile during which the connection crashes (an exception no client
    code expects: a 500 page and an error e-mail, while the decrypted credentials are local
    variables). Then open every page and export that shows runs or the audit trail.

    Returns what was logged during the crash, which is kept apart from `logs` (see
    test_it_keeps_secrets_out_of_the_logs_of_a_crash)."""
    # The form's three starts, the crash, then the API's three starts.
    answers = iter([500, 400, 200, "crash", 500, 400, 200])

    def echoing(request):
        status = next(answers)
        if status == "crash":
            # Before this test's own variables hold a secret: the report shows every frame's.
            raise RuntimeError("the connection broke in a way nobody planned for")
        # What a careless server could echo: the very token and credentials it was sent.
        sent = json.loads(request.body)
        echo = request.headers["Authorization"] + " " + json.dumps(sent)
        echo += "".join(f" {v}" for v in sent.get("userCredentials", {}).values())
        if status == 500:
            return 500, {"Content-Type": "text/html"}, f"<html><pre>{echo}</pre></html>"
        if status == 400:
            body = {"error": {"errorString": echo[:300], "errorDetail": echo}}
            return 400, {}, json.dumps(body)
        return 200, {}, json.dumps({"runCounter": 77})

    coalesce.add_callback(responses.POST, f"{BASE}/scheduler/startRun", callback=echoing)
    for profile in profiles:
        run.post(reverse("runs:new"), run_form(profile))
    # As in production: with DEBUG on, Django's reports show every variable by design.
    before = {name: len(handler.lines) for name, handler in logs.items()}
    with override_settings(DEBUG=False):
        run.post(reverse("runs:new"), run_form(profiles[1]))
    crash_logs = {}
    for name, handler in logs.items():
        crash_logs[f"{name} during the crash"] = "\n".join(handler.lines[before[name]:])
        del handler.lines[before[name]:]
    run.notification_bodies = notify_about_everything(run, coalesce, profiles)
    start_runs_through_the_api(run, profiles)
    send_notifications(run)
    read_node_lists_and_jobs(run, coalesce, profiles)
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
    return crash_logs


SLACK_URL_TOKEN = "SLACK-LEAKCANARY-url-5f6e7d"
SIGNING_SECRET = "whsec-LEAKCANARY-8a9b0c"


def notify_about_everything(run: Recorder, coalesce, profiles) -> list[str]:
    """A Slack destination (its URL holds a token), a signed webhook and the admin's email
    get every event of every profile, and the admin subscribes to the API's runs; the
    bodies the destinations receive are returned for the search."""
    from runs.notifications.models import EVENT_VALUES, Destination, NotificationRule

    slack = Destination(name="Slack", kind=Destination.Kind.SLACK)
    slack.set_secret("url", f"https://127.0.0.1/services/T0/B0/{SLACK_URL_TOKEN}")
    hook = Destination(name="Hook", kind=Destination.Kind.WEBHOOK)
    hook.set_secret("url", "https://127.0.0.1/hook")
    hook.set_secret("signing_secret", SIGNING_SECRET)
    mail_to = Destination(name="Mail", kind=Destination.Kind.EMAIL, email_to="team@example.com")
    for destination in (slack, hook, mail_to):
        destination.save()
        for profile in profiles:
            NotificationRule.objects.create(profile=profile, destination=destination,
                                            events=sorted(EVENT_VALUES))
    bodies: list[str] = []

    def receive(request):
        bodies.append(request.body.decode() + json.dumps(dict(request.headers)))
        return 200, {}, "ok"

    coalesce.add_callback(responses.POST, re.compile(r"https://127\.0\.0\.1/.*"),
                          callback=receive)
    run.get(reverse("admin:runs_destination_changelist"))
    for destination in (slack, hook):
        run.get(reverse("admin:runs_destination_change", args=[destination.pk]))
    return bodies


def send_notifications(run: Recorder) -> None:
    from runs.notifications import delivery
    from runs.notifications.models import Delivery

    with override_settings(WEBHOOK_ALLOW_LOOPBACK=True):
        for row in Delivery.objects.order_by("pk"):
            delivery.deliver(row.pk)
    run.get(reverse("admin:runs_delivery_changelist"))
    for row in Delivery.objects.order_by("pk")[:6]:
        run.get(reverse("admin:runs_delivery_change", args=[row.pk]))


def start_runs_through_the_api(run: Recorder, profiles) -> None:
    """Make an API token on its page (that one answer, which shows the token, is kept
    apart), start a run on each profile with it, and read the runs back: every API answer
    is searched like the pages, and the token itself is a canary (see API_TOKEN)."""
    page = run.client.post(reverse("api_tokens"), {
        "name": "leak ci", "scopes": ["runs:read", "runs:start"], "expires_in": "30"})
    token = API_TOKEN.search(page.content.decode()).group()
    run.api_token = token
    headers = {"Authorization": f"Bearer {token}"}
    for profile in profiles:
        body = json.dumps({"environment": profile.pk, "job_id": "3", "parallelism": 4,
                           "parameters": {"P": "v"}, "notify": True})
        response = run.client.post("/api/v1/runs", body, content_type="application/json",
                                   headers=headers)
        run._keep("POST", "/api/v1/runs", response)
    listed = run.client.get("/api/v1/runs", headers=headers)
    run._keep("GET", "/api/v1/runs", listed)
    for item in listed.json()["runs"]:
        run._keep("GET", f"/api/v1/runs/{item['id']}",
                  run.client.get(f"/api/v1/runs/{item['id']}", headers=headers))
    run.get(reverse("api_tokens"))
    run.get(reverse("admin:runs_apitoken_changelist"))


API_TOKEN = re.compile(r"crd_[A-Za-z0-9_-]{32,}")
def read_node_lists_and_jobs(run: Recorder, coalesce, profiles) -> None:
    """The node list refresh and the job check, while Coalesce echoes the token in a 500
    page; then the run form shows the refresh's error and the job check its answer."""

    def echoing(request):
        token = request.headers["Authorization"]
        return 500, {"Content-Type": "text/html"}, f"<html>{token}</html>"

    coalesce.add_callback(responses.GET, re.compile(rf"{BASE}/api/v1/environments/.*"),
                          callback=echoing)
    for profile in profiles:
        catalogue.refresh(profile)
        run.get(f"{reverse('runs:new')}?environment={profile.pk}")
        run.get(f"{reverse('runs:job_check')}?environment={profile.pk}&job_id=3")


def run_form(profile) -> dict[str, str]:
    return {"environment": profile.pk, "job_id": "3", "parallelism": "4",
            "submit_token": str(uuid.uuid4()), "param_name": "P", "param_value": "v"}


def mail_texts(messages: list[mail.EmailMessage]) -> dict[str, str]:
    """Each e-mail as sent, and its parts decoded (a transfer encoding could hide a secret
    from a search of the raw message)."""
    texts = {}
    for i, message in enumerate(messages):
        texts[f"mail {i}"] = message.message().as_string()
        texts[f"mail {i} subject"] = message.subject
        texts[f"mail {i} body"] = message.body
        for n, (content, _) in enumerate(getattr(message, "alternatives", [])):
            texts[f"mail {i} alternative {n}"] = str(content)
    return texts


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
    # Three connection tests, three starts, the start that crashed, per profile a node
    # list refresh and a job check, and three API starts.
    assert scenario.coalesce_calls == 3 + 3 + 1 + 3 * 2 + 3
    assert sum("HTTP 500" in m for m in scenario.run.messages) == 3


def test_it_recorded_the_runs_it_then_searched(scenario):
    # The crashed start stays "submitting": no answer was recorded for it.
    assert scenario.run_statuses == ["rejected", "rejected", "started", "started",
                                     "submitting", "unreachable", "unreachable"]


def test_it_searched_the_api_answers(scenario):
    answers = [text for label, text in scenario.run.responses.items() if "/api/v1/" in label]
    assert len(answers) == 3 + 1 + 7
    assert scenario.run.api_token.startswith("crd_")


def test_it_sent_one_error_email_about_the_crash(scenario):
    assert len(scenario.mails) == 1
    [report] = scenario.mails
    assert report.subject.endswith("Internal Server Error: /runs/new/")
    assert "RuntimeError at /runs/new/\nthe connection broke" in report.body
    assert "runs/coalesce/client.py" in report.body  # the traceback, down into the client


# --- no secret anywhere -----------------------------------------------------------------------


def test_it_keeps_secrets_out_of_every_response(scenario):
    assert leaks(scenario.run.responses, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_logs(scenario):
    assert leaks(scenario.logs, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_logs_of_a_crash(scenario):
    assert leaks(scenario.crash_logs, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_database_dump(scenario):
    assert leaks({"dumpdata": scenario.dump}, scenario.secrets) == []


def test_it_keeps_secrets_out_of_the_messages(scenario):
    assert leaks({"messages": "\n".join(scenario.run.messages)}, scenario.secrets) == []


def test_it_keeps_secrets_out_of_error_emails(scenario):
    assert scenario.mails, "no error e-mail was sent, so none could be searched"
    assert leaks(mail_texts(scenario.mails), scenario.secrets) == []



def test_no_output_holds_anything_shaped_like_an_api_token(scenario):
    """Secret scanners know the crd_ prefix; so does this test, whatever the token."""
    outputs = {**scenario.run.responses, **scenario.logs, **scenario.crash_logs,
               "dumpdata": scenario.dump, "messages": "\n".join(scenario.run.messages),
               **mail_texts(scenario.mails)}
    assert [name for name, text in outputs.items() if API_TOKEN.search(text)] == []


def test_it_sent_notifications_it_then_searched(scenario):
    # Three API starts: a 500 (couldn't start), a 400 (couldn't start), a success (no
    # outcome yet). Two events x (Slack + webhook); the emails are in mails.
    assert len(scenario.run.notification_bodies) == 2 * 2
    assert any("X-Dashboard-Signature" in body for body in scenario.run.notification_bodies)
    # The same two events to team@example.com, and to the admin who ticked "notify".
    assert len(scenario.notification_mails) == 2 * 2


def test_it_keeps_secrets_out_of_notifications(scenario):
    bodies = dict(enumerate(scenario.run.notification_bodies))
    assert leaks({f"notification {i}": b for i, b in bodies.items()}, scenario.secrets) == []
    assert leaks(mail_texts(scenario.notification_mails), scenario.secrets) == []
