"""The security suite: the review's attacks, kept running.

A hostile Coalesce stand-in (tests/hostile.py) echoes every secret it receives, plain and
encoded, in errors, listings and node results; the tests check that none of it is stored
or shown. Then the findings one by one (M1-M6, L2-L11 of the review), oversized inputs,
and the access-control matrix: every URL for every kind of user.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import serializers
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from runs import audit, metrics, private_keys, service, sweep, tokens
from runs.models import AuditEntry, EnvironmentProfile, Run, RunEvent
from tests.factories import grant, make_profile, make_run, pem_of, profile_form, run_form
from tests.hostile import encodings, running_hostile

pytestmark = pytest.mark.django_db

TOKEN = "tok-SECRET-API-7f3c9d2e1a"
PASSWORD = "pw-SECRET-BASIC-44x!"
PASSPHRASE = "Pp-SecretPass-9z"
AuthType = EnvironmentProfile.AuthType


@pytest.fixture
def hostile():
    with running_hostile() as server:
        yield server


def _basic(hostile, environment_id: str, groups=(), name: str | None = None):
    return make_profile(name=name or f"Basic {environment_id}", base_url=hostile.base_url,
                        environment_id=environment_id, api_token=TOKEN,
                        snowflake_auth_type=AuthType.BASIC, snowflake_username="SVC",
                        snowflake_password=PASSWORD, groups=groups)


def _key_pair(hostile, environment_id: str, rsa_key, groups=()):
    key = private_keys.normalise_private_key(pem_of(rsa_key, PASSPHRASE), PASSPHRASE)
    return make_profile(name=f"KeyPair {environment_id}", base_url=hostile.base_url,
                        environment_id=environment_id, api_token=TOKEN,
                        snowflake_auth_type=AuthType.KEYPAIR, snowflake_username="SVC",
                        private_key=key, private_key_passphrase=PASSPHRASE, groups=groups)


def _start(profile, user) -> Run:
    run, _ = service.start_run(service.RunRequest(profile=profile, job_id="7"), user=user,
                               client_ip="127.0.0.1", submit_token=uuid.uuid4())
    return run


def _everything_stored() -> str:
    """Every run, event and audit entry as JSON: what the database keeps."""
    objects = [*Run.objects.all(), *RunEvent.objects.all(), *AuditEntry.objects.all()]
    return serializers.serialize("json", objects)


def _echoed_forms(hostile) -> dict[str, str]:
    """Every form of every secret the stand-in received, by a name that shows no value."""
    assert hostile.state.secrets, "the stand-in received no secret: the test proves nothing"
    return {f"secret {i} {name}": form for i, secret in enumerate(hostile.state.secrets)
            for name, form in encodings(secret).items()}


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def _leaks(texts: dict[str, str], forms: dict[str, str]) -> list[str]:
    """'<form> in <where>' for each echo found; never the value itself."""
    return [f"{name} in {where}" for where, text in texts.items()
            for name, form in forms.items() if form in html.unescape(text)]


# --- M1: secrets echoed by Coalesce, plain and encoded ---


def test_m1_no_echoed_secret_is_stored_or_shown(hostile, alice, admin_user, carol, analysts,
                                                rsa_key):
    runs = [_start(_basic(hostile, "evilok", [analysts]), alice),
            _start(_key_pair(hostile, "evilkey", rsa_key, [analysts]), alice),
            _start(_basic(hostile, "echo-json", [analysts]), alice),
            _start(_basic(hostile, "echo-raw", [analysts]), alice)]
    sweep.sweep()  # the listing (runFailureReason) and the node results

    started = Run.objects.filter(pk__in=[runs[0].pk, runs[1].pk])
    assert all(run.results for run in started), "the results were not fetched"
    texts = {"database": _everything_stored()}
    for user in (alice, carol, admin_user):
        client = Client()
        client.force_login(user)
        for run in runs:
            texts[f"run {run.pk} for {user}"] = client.get(run.get_absolute_url()).content.decode()
        texts[f"history for {user}"] = client.get(reverse("runs:list")).content.decode()
        texts[f"CSV for {user}"] = _body(client.get(reverse("runs:export")))
    admin = Client()
    admin.force_login(admin_user)
    for run in runs:
        url = reverse("admin:runs_run_change", args=[run.pk])
        texts[f"admin {run.pk}"] = admin.get(url).content.decode()
    assert _leaks(texts, _echoed_forms(hostile)) == []


# --- M2: size caps, and a listing too big to hold ---


@pytest.mark.parametrize("field", ["include_selector", "exclude_selector"])
def test_m2_a_selector_over_the_cap_is_refused_with_the_cap(alice_client, profile, field):
    response = alice_client.post(reverse("runs:new"), run_form(
        profile, **{field: "{ name: A }" + " OR { name: B }" * 400}))
    assert response.status_code == 200
    assert "at most 4,000 characters" in response.content.decode()
    assert not Run.objects.exists()


def test_m2_too_many_or_too_long_parameters_are_refused(alice_client, profile):
    names = [f"P{i}" for i in range(51)]
    response = alice_client.post(reverse("runs:new"), run_form(
        profile, param_name=names, param_value=["v"] * 51))
    assert "At most 50 parameters" in response.content.decode()
    response = alice_client.post(reverse("runs:new"), run_form(
        profile, param_name=["P"], param_value=["v" * 1001]))
    assert "at most 1,000 characters" in response.content.decode()
    assert not Run.objects.exists()


def test_m2_a_listing_too_big_in_detail_does_not_stop_following(hostile, alice, analysts):
    profile = _basic(hostile, "huge", [analysts])
    followed = _start(profile, alice)
    # An attempt whose answer was lost: only a detailed listing can reconcile it.
    lost = make_run(profile, alice, status=Run.Status.UNKNOWN, job_id="7",
                    created_at=timezone.now() - timedelta(minutes=5))

    report = sweep.sweep()

    followed.refresh_from_db()
    assert followed.coalesce_status == "failed"  # still followed, from the plain listing
    assert followed.last_checked_at is not None
    assert any("skipped a run Coalesce could not list in detail" in e for e in report.errors)
    lost.refresh_from_db()
    assert lost.status == Run.Status.UNKNOWN  # not linked to a run it could not see


# --- M4: IPv4-mapped IPv6 client addresses ---


def test_m4_a_mapped_ipv6_login_keeps_the_audit_chain_intact(alice):
    Client(REMOTE_ADDR="::ffff:127.0.0.1").post(
        reverse("login"), {"username": "alice", "password": "alice-password"})
    entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED)
    assert entry.ip == "127.0.0.1"
    assert audit.verify_chain().ok


def test_m4_a_real_ipv6_address_is_hashed_as_stored(alice):
    Client(REMOTE_ADDR="2001:DB8:0:0:0:0:0:1").post(
        reverse("login"), {"username": "alice", "password": "wrong"})
    assert AuditEntry.objects.get().ip == "2001:db8::1"
    assert audit.verify_chain().ok


# --- M6: odd values from one environment ---


@pytest.mark.parametrize("environment_id", ["farfuture", "farpast", "longstatus"])
def test_m6_an_odd_listing_is_skipped_and_the_others_are_swept(hostile, alice, analysts,
                                                               environment_id):
    odd = _start(_basic(hostile, environment_id, [analysts], name="A odd"), alice)
    healthy = _start(_basic(hostile, "evilok", [analysts], name="B healthy"), alice)

    for _ in range(2):  # the second sweep reads what the first one stored
        sweep.sweep(now=timezone.now() + timedelta(minutes=1), interval=0)

    healthy.refresh_from_db()
    assert healthy.coalesce_status == "failed"
    odd.refresh_from_db()
    if environment_id == "longstatus":
        assert odd.coalesce_status == ""  # skipped, not cut short
    else:
        assert odd.coalesce_status == "failed"
        assert odd.coalesce_started_at is None  # the impossible time is dropped


# --- L2: the DEBUG error page ---


def test_l2_the_debug_error_page_shows_no_secret(hostile, alice, analysts, rsa_key,
                                                 monkeypatch, settings):
    from runs.coalesce.client import CoalesceClient

    def crash(self, response, **kwargs):
        raise RuntimeError("crashed while reading the answer")

    monkeypatch.setattr(CoalesceClient, "_answer", crash)
    settings.DEBUG = True
    pages = {}
    for profile in (_basic(hostile, "evilok", [analysts]),
                    _key_pair(hostile, "evilkey", rsa_key, [analysts])):
        client = Client(raise_request_exception=False)
        client.force_login(alice)
        response = client.post(reverse("runs:new"), run_form(profile))
        assert response.status_code == 500
        pages[profile.name] = response.content.decode()
    assert "RuntimeError" in pages["Basic evilok"]  # the technical page, not the plain one
    assert _leaks(pages, _echoed_forms(hostile)) == []


# --- L3: CSV injection ---


def test_l3_formulas_after_a_separator_are_neutralised_in_both_exports(alice, profile,
                                                                       admin_user):
    payload = "{ name: X };=cmd|' /C calc'!A0"
    make_run(profile, alice, include_selector=payload)
    Client().post(reverse("login"), {"username": "x;=cmd|' /C calc'!A0", "password": "x"})
    client = Client()
    client.force_login(admin_user)
    for url in (reverse("runs:export"), reverse("runs:audit_export")):
        body = _body(client.get(url))
        assert "=cmd" in body
        assert ";=cmd" not in body and ";'=cmd" in body


# --- L4: the base-URL allow-list at call time ---


def test_l4_a_profile_no_longer_allowed_is_not_called(hostile, alice, analysts, settings):
    profile = _basic(hostile, "evilok", [analysts])
    settings.COALESCE_ALLOW_INSECURE_LOOPBACK = False
    run = _start(profile, alice)
    assert run.status == Run.Status.NOT_SENT
    assert hostile.state.requests == []


# --- L5: side effects need permission to run the profile ---


def test_l5_an_auditor_cannot_fetch_results_or_cancel(hostile, carol, alice, analysts):
    profile = _basic(hostile, "evilok", [analysts])
    profile.organization_id = "org"
    profile.save()
    run = make_run(profile, alice, run_counter=501, coalesce_status="running")
    grant(carol, "cancel_run")
    client = Client()
    client.force_login(carol)
    assert client.post(reverse("runs:refresh_results", args=[run.pk])).status_code == 404
    assert client.post(reverse("runs:cancel", args=[run.pk])).status_code == 404
    assert hostile.state.requests == []


# --- M5: a failed cancel can be retried ---


def test_m5_a_failed_cancel_can_be_tried_again(alice, analysts):
    profile = make_profile(name="Down", base_url="http://127.0.0.1:9", environment_id="1",
                           organization_id="org", groups=[analysts])
    grant(alice, "cancel_run")
    run = make_run(profile, alice, run_counter=5, coalesce_status="running")
    first = service.cancel_run(run, user=alice, client_ip=None)
    second = service.cancel_run(run, user=alice, client_ip=None)
    assert "safe to try again" in first
    assert second != "Cancelling this run was already requested."
    actions = list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))
    assert actions == ["run_cancel_requested", "run_cancel_failed"] * 2


# --- L6: out-of-range numbers ---


def test_l6_a_huge_id_in_the_statuses_query_is_a_400(alice_client):
    response = alice_client.get(reverse("runs:statuses"), {"ids": "99999999999999999999999"})
    assert response.status_code == 400


def test_l6_a_huge_run_counter_leaves_a_clear_outcome(hostile, alice, analysts):
    run = _start(_basic(hostile, "bigcounter", [analysts]), alice)
    assert run.status == Run.Status.UNKNOWN  # not stuck in "submitting"
    assert run.run_counter is None
    assert "runCounter" in run.error_message


def test_l6_a_passphrase_for_an_undecryptable_key_is_a_form_error(admin_client, rsa_key):
    key = private_keys.normalise_private_key(pem_of(rsa_key, PASSPHRASE), PASSPHRASE)
    one = make_profile(name="One", snowflake_auth_type=AuthType.KEYPAIR,
                       snowflake_username="SVC", private_key=key,
                       private_key_passphrase=PASSPHRASE)
    two = make_profile(name="Two", environment_id="2", snowflake_auth_type=AuthType.KEYPAIR,
                       snowflake_username="SVC", private_key=key,
                       private_key_passphrase=PASSPHRASE)
    # A key-ring mistake: the ciphertext is bound to profile One, not Two.
    EnvironmentProfile.objects.filter(pk=two.pk).update(private_key_ct=one.private_key_ct)
    response = admin_client.post(
        reverse("admin:runs_environmentprofile_change", args=[two.pk]),
        profile_form(name="Two", environment_id="2", snowflake_auth_type="KeyPair",
                     private_key_passphrase="new-passphrase"))
    assert response.status_code == 200
    assert "cannot be decrypted" in response.content.decode()


# --- L7 and L10: parameters with NUL, job IDs with other digits ---


@pytest.mark.parametrize(("name", "value"), [("a\x00b", "v"), ("a", "v\x00w")])
def test_l7_a_nul_in_a_parameter_is_a_form_error(alice_client, profile, name, value):
    response = alice_client.post(reverse("runs:new"), run_form(
        profile, param_name=[name], param_value=[value]))
    assert response.status_code == 200
    assert "null character" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.parametrize("job_id", ["²", "١٢"])
def test_l10_a_job_id_takes_ascii_digits_only(alice_client, profile, job_id):
    response = alice_client.post(reverse("runs:new"), run_form(profile, job_id=job_id))
    assert "A job ID is a number" in response.content.decode()
    assert not Run.objects.exists()


# --- L8: the audit chain ---


def _insert_entry(seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {AuditEntry._meta.db_table} (seq, at, actor, ip, action, target, "
            "details, previous_hash, hash) VALUES (%s, %s, 'mallory', NULL, "
            "'credential_replaced', '', '{}', %s, %s)",
            [seq, timezone.now(), "0" * 64, "f" * 64])


def test_l8_an_inserted_row_with_seq_0_is_reported(alice):
    audit.record(audit.Action.LOGIN_SUCCEEDED, actor="alice")
    _insert_entry(0)
    report = audit.verify_chain()
    assert (report.ok, report.broken_seq) == (False, 0)


def test_l8_a_keyed_chain_cannot_be_rewritten_without_the_key(settings):
    settings.AUDIT_HMAC_KEY = "kept-outside-the-database"
    for n in range(3):
        audit.record(audit.Action.LOGIN_FAILED, actor=f"user{n}")
    assert audit.verify_chain().ok
    # Someone with only database access edits #2 and recomputes every hash after it.
    entries = list(AuditEntry.objects.order_by("seq"))
    entries[1].actor = "someone-else"
    previous = entries[0].hash
    for entry in entries[1:]:
        entry.previous_hash = previous
        entry.hash = previous = audit.digest(entry, entry.previous_hash)
        AuditEntry.objects.filter(pk=entry.pk).update(actor=entry.actor, hash=entry.hash,
                                                      previous_hash=entry.previous_hash)
    report = audit.verify_chain()
    assert (report.ok, report.broken_seq) == (False, 2)


def test_l8_turning_the_key_on_keeps_the_older_entries_valid(settings):
    audit.record(audit.Action.LOGIN_FAILED, actor="before")
    settings.AUDIT_HMAC_KEY = "kept-outside-the-database"
    audit.record(audit.Action.LOGIN_FAILED, actor="after")
    assert audit.verify_chain().ok


# --- L9: cookies ---


def test_l9_the_csrf_cookie_is_http_only(client):
    response = client.get(reverse("login"))
    assert response.cookies["csrftoken"]["httponly"]


# --- L11: a fresh install ---


def test_l11_generate_credentials_key_runs_on_a_fresh_install(tmp_path):
    # As an operator runs it first: no key ring yet, so the system checks would fail.
    env = {**os.environ, "CREDENTIALS_ENCRYPTION_KEYS": "", "DEBUG": "false",
           "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "dashboard.settings",
           "SQLITE_PATH": str(tmp_path / "fresh.sqlite3")}
    done = subprocess.run([sys.executable, "manage.py", "generate_credentials_key"], env=env,
                          cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    kid, _, key = done.stdout.strip().partition(":")
    assert kid and len(key) == 44


def test_the_stand_in_really_echoes(hostile, alice, analysts):
    """The suite's premise: without scrubbing, the answers would carry the secrets."""
    run = _start(_basic(hostile, "evilok", [analysts]), alice)
    import requests

    url = f"{hostile.base_url}/api/v1/runs/{run.run_counter}/results"
    results = requests.get(url, timeout=5).text
    assert PASSWORD in results and TOKEN in results
    assert encodings(PASSWORD)["url-encoded"] in results


# --- M3: login lockouts, and no more audit flooding ---


def _try_login(client, username, password="wrong"):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_m3_an_account_is_locked_after_five_failures_even_with_the_right_password(alice):
    for n in range(5):
        Client(REMOTE_ADDR=f"10.0.0.{n}").post(
            reverse("login"), {"username": "alice", "password": "wrong"})
    response = _try_login(Client(REMOTE_ADDR="10.0.1.1"), "alice", "alice-password")
    assert response.status_code == 429
    assert "Login locked" in response.content.decode()
    assert "locked for 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in response.client.session


def test_m3_an_address_is_locked_after_five_failures_whatever_the_names(alice):
    client = Client(REMOTE_ADDR="10.0.0.9")
    for n in range(5):
        _try_login(client, f"guess{n}")
    assert _try_login(client, "alice", "alice-password").status_code == 429
    # Another address may still log in as alice.
    assert _try_login(Client(REMOTE_ADDR="10.0.0.10"), "alice",
                      "alice-password").status_code == 302


def test_m3_an_admin_unlocks_from_the_admin(alice, admin_client):
    from axes.models import AccessAttempt

    for _ in range(5):
        _try_login(Client(REMOTE_ADDR="10.0.0.9"), "alice")
    attempts = AccessAttempt.objects.all()
    assert attempts.exists()
    changelist = reverse("admin:axes_accessattempt_changelist")
    assert admin_client.get(changelist).status_code == 200
    admin_client.post(changelist, {"action": "delete_selected", "post": "yes",
                                   "_selected_action": [a.pk for a in attempts]})
    assert _try_login(Client(REMOTE_ADDR="10.0.0.9"), "alice",
                      "alice-password").status_code == 302


def test_m3_forty_failures_make_a_handful_of_audit_entries(alice):
    for n in range(40):
        _try_login(Client(REMOTE_ADDR="10.0.0.9"), "alice" if n % 2 else f"guess{n % 6}")
    actions = list(AuditEntry.objects.values_list("action", "actor"))
    failed = [actor for action, actor in actions if action == "login_failed"]
    assert len(failed) == len(set(failed)) <= 5  # one per account name in the window
    assert [a for a, _ in actions].count("login_locked_out") == 1
    assert audit.verify_chain().ok


# --- headers: CSP and caching ---


def test_every_page_has_a_strict_policy(client, alice_client, admin_client):
    for c, url in ((client, reverse("login")), (alice_client, reverse("runs:list")),
                   (admin_client, reverse("admin:index"))):
        policy = c.get(url).headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_authenticated_pages_and_exports_are_not_stored(alice_client, admin_client):
    for c, url in ((alice_client, reverse("runs:list")), (alice_client, reverse("runs:export")),
                   (admin_client, reverse("runs:audit_export")),
                   (admin_client, reverse("admin:index"))):
        assert "no-store" in c.get(url).headers["Cache-Control"], url


# --- Snowflake programmatic access tokens ---


def _pat_profile(days: int, groups=(), **fields):
    return make_profile(name="Warehouse", snowflake_auth_type=AuthType.BASIC,
                        snowflake_username="SVC", snowflake_password="pat-value-1234",
                        snowflake_password_is_pat=True,
                        snowflake_pat_expires_on=timezone.localdate() + timedelta(days=days),
                        groups=groups, **fields)


@pytest.mark.parametrize(("days", "note"), [
    (40, "PAT expires in 40 days"),
    (9, "PAT expires in 9 days: renew it soon"),
    (1, "PAT expires in 1 day: renew it soon"),
    (0, "PAT expired on"),
])
def test_pat_notes(db, days, note):
    assert _pat_profile(days).pat_expiry_note.startswith(note)


def test_pat_expiry_shows_in_the_run_form_and_the_history_filter(alice_client, analysts):
    _pat_profile(9, [analysts])
    for url in (reverse("runs:new"), reverse("runs:list")):
        page = alice_client.get(url).content.decode()
        assert "⚠ Warehouse (PAT expires in 9 days)" in page, url


def test_pat_expiry_warns_in_the_admin(admin_client):
    profile = _pat_profile(3)
    page = admin_client.get(reverse("admin:runs_environmentprofile_change", args=[profile.pk]))
    assert "Warehouse: PAT expires in 3 days: renew it soon." in page.content.decode()
    listing = admin_client.get(reverse("admin:runs_environmentprofile_changelist"))
    assert "PAT expires in 3 days" in listing.content.decode()


def test_a_start_with_an_expired_pat_is_refused_before_sending(alice, analysts, coalesce):
    profile = _pat_profile(-2, [analysts])
    run = _start(profile, alice)
    assert (run.status, run.error_kind) == (Run.Status.NOT_SENT, "refused")
    expired_on = (timezone.localdate() - timedelta(days=2)).isoformat()
    assert f"“Warehouse” expired on {expired_on}" in run.error_message
    assert len(coalesce.calls) == 0


def test_the_admin_records_a_pat_and_refuses_it_for_key_pair(admin_client):
    url = reverse("admin:runs_environmentprofile_add")
    response = admin_client.post(url, profile_form(
        api_token="tok-1234", snowflake_password="pat-1234", snowflake_password_is_pat="on",
        snowflake_pat_expires_on="2031-01-31"))
    assert response.status_code == 302
    profile = EnvironmentProfile.objects.get(name="Staging")
    assert profile.snowflake_password_is_pat and str(profile.snowflake_pat_expires_on) == \
        "2031-01-31"
    response = admin_client.post(url, profile_form(
        name="Other", api_token="tok-1234", snowflake_password="pw-1234",
        snowflake_pat_expires_on="2031-01-31"))
    assert "tick this box" in response.content.decode()


# --- the access-control matrix: every URL x every kind of user ---

PEOPLE = ["anonymous", "no group", "analyst of another profile", "analyst", "forcer",
          "canceller", "auditor", "superuser"]
R, A, D, F, N = 200, 302, 403, 404, 286  # shown, redirected, refused, hidden, stop polling
# url name -> expected status per person, in PEOPLE's order.
MATRIX = {
    "history":          [A, R, R, R, R, R, R, R],
    "charts":           [A, R, R, R, R, R, R, R],
    "statuses":         [A, N, N, R, R, R, R, R],
    "history CSV":      [A, R, R, R, R, R, R, R],
    "audit log":        [A, D, D, D, D, D, R, R],
    "audit CSV":        [A, D, D, D, D, D, R, R],
    "new run":          [A, R, R, R, R, R, R, R],
    "run page":         [A, F, F, R, R, R, R, R],
    "run status":       [A, F, F, R, R, R, R, R],
    "fetch results":    [A, F, F, A, A, A, F, A],
    "cancel (confirm)": [A, D, D, D, D, R, D, R],
    "rerun (confirm)":  [A, F, F, R, R, R, F, R],
    "admin":            [A, A, A, A, A, A, A, R],
    "admin profile":    [A, A, A, A, A, A, A, R],
    "healthz":          [R, R, R, R, R, R, R, R],
    "readyz":           [R, R, R, R, R, R, R, R],
    "metrics (no token)": [401, 401, 401, 401, 401, 401, 401, 401],
    "login":            [R, R, R, R, R, R, R, R],
    # The run form's helpers answer a profile the user may not run like an unknown one.
    "node search":      [A, R, R, R, R, R, R, R],
    "selector preview": [A, R, R, R, R, R, R, R],
    "job check":        [A, R, R, R, R, R, R, R],
    "node list status": [A, F, F, R, R, R, F, R],
    "node list refresh": [A, F, F, A, A, A, F, A],
    "my settings":      [A, R, R, R, R, R, R, R],
    "API tokens":       [A, R, R, R, R, R, R, R],
    # alice's token: only its owner and an admin may revoke it (then it stays revoked).
    "revoke a token":   [A, F, F, A, F, F, F, A],
    "API docs":         [A, R, R, R, R, R, R, R],
    # The API takes personal access tokens only: a browser session is not enough.
    "API runs (session)": [401, 401, 401, 401, 401, 401, 401, 401],
}


@pytest.fixture
def people(alice, bob, admin_user, analysts):
    from django.contrib.auth.models import Group

    others = Group.objects.create(name="others")
    dave = User.objects.create_user("dave", password="dave-password")
    dave.groups.add(others)
    make_profile(name="Other", environment_id="99", groups=[others])

    def analyst(name, *perms):
        user = User.objects.create_user(name, password=f"{name}-password")
        user.groups.add(analysts)
        return grant(user, *perms)

    auditor = grant(User.objects.create_user("audrey", password="x"), "view_run",
                    "view_auditentry")
    return dict(zip(PEOPLE, [None, bob, dave, alice, analyst("frank", "force_run"),
                             analyst("cathy", "cancel_run"), auditor, admin_user], strict=True))


def _requests(profile, running, failed, no_counter, token) -> dict[str, tuple]:
    return {
        "history": ("get", reverse("runs:list")),
        "charts": ("get", reverse("runs:charts")),
        "statuses": ("get", f"{reverse('runs:statuses')}?ids={running.pk}"),
        "history CSV": ("get", reverse("runs:export")),
        "audit log": ("get", reverse("runs:audit_log")),
        "audit CSV": ("get", reverse("runs:audit_export")),
        "new run": ("get", reverse("runs:new")),
        "run page": ("get", reverse("runs:detail", args=[running.pk])),
        "run status": ("get", reverse("runs:status", args=[running.pk])),
        "fetch results": ("post", reverse("runs:refresh_results", args=[no_counter.pk])),
        "cancel (confirm)": ("get", reverse("runs:cancel", args=[running.pk])),
        "rerun (confirm)": ("get", reverse("runs:rerun", args=[failed.pk])),
        "admin": ("get", reverse("admin:index")),
        "admin profile": ("get", reverse("admin:runs_environmentprofile_change",
                                         args=[profile.pk])),
        "healthz": ("get", "/healthz"),
        "readyz": ("get", "/readyz"),
        "metrics (no token)": ("get", "/metrics"),
        "login": ("get", reverse("login")),
        "node search": ("get", f"{reverse('runs:node_search')}?environment={profile.pk}"),
        "selector preview": ("get", f"{reverse('runs:selector_preview')}?environment="
                             f"{profile.pk}&include_selector=%7Bname%3AX%7D"),
        "job check": ("get", f"{reverse('runs:job_check')}?environment={profile.pk}&job_id=7"),
        "node list status": ("get", f"{reverse('runs:catalogue_status')}?environment="
                             f"{profile.pk}"),
        "node list refresh": ("post", reverse("runs:refresh_catalogue"),
                              {"environment": profile.pk}),
        "my settings": ("get", reverse("my_settings")),
        "API tokens": ("get", reverse("api_tokens")),
        "revoke a token": ("post", reverse("revoke_api_token", args=[token.pk])),
        "API docs": ("get", reverse("api_docs")),
        "API runs (session)": ("get", "/api/v1/runs"),
    }


def test_the_access_control_matrix(people, profile, alice, settings, coalesce):
    settings.METRICS_TOKEN = "scrape-me"
    profile.organization_id = "org"
    profile.save()
    running = make_run(profile, alice, run_counter=1, coalesce_status="running")
    failed = make_run(profile, alice, run_counter=2, coalesce_status="failed")
    # No runCounter: fetching its results is answered without calling Coalesce.
    no_counter = make_run(profile, alice, run_counter=None, coalesce_status="failed")
    metrics.sweep_finished(0.1)  # the worker's heartbeat, so /readyz is ready
    wrong = []
    token, _ = tokens.create_token(alice, name="CI", scopes=["runs:read"], expires_at=None,
                                   ip=None)
    for name, (method, url, *data) in _requests(profile, running, failed, no_counter,
                                                token).items():
        for person, expected in zip(PEOPLE, MATRIX[name], strict=True):
            client = Client()
            if people[person] is not None:
                client.force_login(people[person])
            status = getattr(client, method)(url, *data).status_code
            if status != expected:
                wrong.append(f"{name} as {person}: {status}, expected {expected}")
    assert wrong == [], "\n".join(wrong)
    # Only the job check calls Coalesce, and only for the four who may run the profile.
    called = [call.request.url for call in coalesce.calls]
    assert len(called) == 4 and all("/jobs/7" in url for url in called), called


def test_the_matrix_covers_every_url():
    """A new URL must be added to the matrix: every named route is in it."""
    from django.urls import get_resolver

    names = {p.name for p in get_resolver().url_patterns if getattr(p, "name", None)}
    runs_names = {p.name for p in get_resolver("runs.urls").url_patterns}
    covered = {"healthz", "readyz", "metrics", "login", "logout", "my_settings", "api_tokens",
               "revoke_api_token", "api_docs",
               *{"list", "charts", "statuses", "export", "audit_log", "audit_export", "new",
                 "detail", "status", "refresh_results", "cancel", "rerun", "node_search",
                 "selector_preview", "job_check", "catalogue_status", "refresh_catalogue"}}
    assert names | runs_names <= covered | {"oidc_authentication_init",
                                            "oidc_authentication_callback", "oidc_logout"}


# --- oversized inputs ---


def test_oversized_inputs_get_clear_answers(alice_client, profile):
    new = reverse("runs:new")
    huge_body = alice_client.post(new, run_form(profile, include_selector="x" * 3_000_000))
    assert huge_body.status_code == 400  # over DATA_UPLOAD_MAX_MEMORY_SIZE, nothing stored
    long_job = alice_client.post(new, run_form(profile, job_id="1" * 65))
    assert "at most 64 digits" in long_job.content.decode()
    assert alice_client.get("/runs/99999999999999999999999/").status_code == 404
    many_ids = ",".join(str(i) for i in range(1, 3000))
    assert alice_client.get(reverse("runs:statuses"), {"ids": many_ids}).status_code in (
        200, 286)
    long_search = alice_client.get(reverse("runs:list"), {"q": "x" * 10_000})
    assert long_search.status_code == 400
    assert not Run.objects.exists()


def test_the_operator_endpoints_show_no_secret(hostile, alice, analysts, client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    _start(_basic(hostile, "evilok", [analysts]), alice)
    sweep.sweep()
    texts = {"readyz": client.get("/readyz").content.decode(),
             "healthz": client.get("/healthz").content.decode(),
             "metrics": client.get("/metrics", headers={
                 "Authorization": "Bearer scrape-me"}).content.decode()}
    assert "dashboard_coalesce_calls_total" in texts["metrics"]
    assert _leaks(texts, _echoed_forms(hostile)) == []
