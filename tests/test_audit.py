from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs import audit
from runs.models import AuditEntry, EnvironmentProfile
from tests.factories import grant, profile_form

pytestmark = pytest.mark.django_db
Action = AuditEntry.Action


def _verify(*args) -> str:
    out = io.StringIO()
    call_command("verify_audit_log", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def chain():
    return [audit.record(Action.LOGIN_SUCCEEDED, actor=f"user{i}", ip="192.0.2.7",
                         target="", details={"n": i}) for i in range(5)]


def test_it_chains_each_entry_to_the_previous_one(chain):
    assert chain[0].previous_hash == audit.GENESIS
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.previous_hash == before.hash and after.seq == before.seq + 1
    assert "Audit log intact: 5 entries" in _verify()


def test_it_detects_an_edited_entry(chain):
    AuditEntry.objects.filter(seq=3).update(actor="mallory")
    with pytest.raises(CommandError, match="entry #3: its content does not match its hash"):
        _verify()


def test_it_detects_edited_details(chain):
    AuditEntry.objects.filter(seq=2).update(details={"n": 99})
    with pytest.raises(CommandError, match="entry #2"):
        _verify()


def test_it_detects_a_deleted_entry(chain):
    AuditEntry.objects.filter(seq=3).delete()
    with pytest.raises(CommandError, match="entry #4: entry #3 is missing"):
        _verify()


def test_it_detects_a_deleted_entry_with_renumbering(chain):
    # A careful forger deletes #3 and renumbers the rest to close the gap.
    AuditEntry.objects.filter(seq=3).delete()
    for seq in (4, 5):
        AuditEntry.objects.filter(seq=seq).update(seq=seq - 1)
    with pytest.raises(CommandError, match="entry #3: does not follow the entry before it"):
        _verify()


def test_it_detects_reordered_entries(chain):
    AuditEntry.objects.filter(seq=2).update(seq=100)
    AuditEntry.objects.filter(seq=4).update(seq=2)
    AuditEntry.objects.filter(seq=100).update(seq=4)
    with pytest.raises(CommandError, match="entry #2"):
        _verify()


def test_the_anchor_detects_entries_deleted_from_the_end(chain):
    head = _verify().split("head ")[1].strip()
    assert head == f"5:{chain[-1].hash}"
    AuditEntry.objects.filter(seq=5).delete()
    assert "intact: 4 entries" in _verify()  # a shorter chain is still a valid chain...
    with pytest.raises(CommandError, match="#5 of the anchor is missing"):
        _verify("--anchor", head)  # ...which the kept head reveals


def test_it_records_logins_and_failures_without_passwords(client, alice):
    client.post(reverse("login"), {"username": "alice", "password": "wrong-password-xyz"},
                REMOTE_ADDR="198.51.100.4")
    client.post(reverse("login"), {"username": "alice", "password": "alice-password"})
    failed, succeeded = AuditEntry.objects.order_by("seq")
    assert (failed.action, failed.actor, failed.ip) == (Action.LOGIN_FAILED, "alice",
                                                       "198.51.100.4")
    assert succeeded.action == Action.LOGIN_SUCCEEDED
    assert "wrong-password-xyz" not in str(list(AuditEntry.objects.values()))


def _profile_post(**overrides) -> dict:
    return profile_form(**{
        "name": "Audited", "environment_id": "9", "api_token": "tok-audit-canary-777",
        "snowflake_username": "svc", "snowflake_password": "pw-audit-canary-888",
        "snowflake_warehouse": "", "snowflake_role": "", **overrides})


def test_it_records_profile_and_credential_changes_by_name_only(admin_client):
    admin_client.post(reverse("admin:runs_environmentprofile_add"), _profile_post())
    profile = EnvironmentProfile.objects.get(name="Audited")
    change_url = reverse("admin:runs_environmentprofile_change", args=[profile.pk])
    admin_client.post(change_url, _profile_post(api_token="", snowflake_password="pw-new-canary",
                                                snowflake_role="ANALYST"))
    admin_client.post(change_url, _profile_post(api_token="", snowflake_password="",
                                                snowflake_role="ANALYST",
                                                snowflake_auth_type="OAuth"))
    entries = AuditEntry.objects.exclude(action=Action.LOGIN_SUCCEEDED).order_by("seq")
    actions = list(entries.values_list("action", "details"))
    assert actions == [
        (Action.PROFILE_CREATED, {"fields": ["Name", "Coalesce base URL", "Environment ID",
                                             "Snowflake auth type", "Snowflake username"]}),
        (Action.CREDENTIAL_STORED, {"field": "Coalesce API token"}),
        (Action.CREDENTIAL_STORED, {"field": "Snowflake password"}),
        (Action.PROFILE_CHANGED, {"fields": ["Snowflake role"]}),
        (Action.CREDENTIAL_REPLACED, {"field": "Snowflake password"}),
        (Action.PROFILE_CHANGED, {"fields": ["Snowflake auth type"]}),
        (Action.CREDENTIAL_CLEARED, {"field": "Snowflake password", "reason": "not used by OAuth"}),
    ]
    dump = str(list(AuditEntry.objects.values()))
    for canary in ("tok-audit-canary-777", "pw-audit-canary-888", "pw-new-canary"):
        assert canary not in dump
    assert all(e.actor == "admin" for e in AuditEntry.objects.all())


def test_it_records_profile_deletion(admin_client, profile):
    url = reverse("admin:runs_environmentprofile_delete", args=[profile.pk])
    admin_client.post(url, {"post": "yes"})
    entry = AuditEntry.objects.get(action=Action.PROFILE_DELETED)
    assert entry.target == f"profile {profile.pk} Production"


def test_it_records_a_key_rotation(settings, profile):
    from runs.encryption import generate_key

    old_ring = settings.CREDENTIALS_ENCRYPTION_KEYS
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{generate_key('next')},{old_ring}"
    call_command("rotate_credentials_key", stdout=io.StringIO())
    entry = AuditEntry.objects.get(action=Action.CREDENTIALS_ROTATED)
    assert entry.details == {"re_encrypted": 1, "before": {"test1": 1}}
    assert entry.target == "key next"


@responses.activate
def test_it_records_started_forced_and_rejected_runs(alice, profile):
    import uuid

    from runs.service import RunRequest, start_run

    url = "https://app.coalescesoftware.io/scheduler/startRun"
    responses.post(url, json={"runCounter": 5})
    start_run(RunRequest(profile=profile, job_id="7"), user=alice, client_ip="192.0.2.1",
              submit_token=uuid.uuid4())
    responses.post(url, status=400, json={"error": {"errorString": "Not deployed"}})
    start_run(RunRequest(profile=profile, job_id="7", force=True), user=alice,
              client_ip="192.0.2.1", submit_token=uuid.uuid4())
    entries = list(AuditEntry.objects.order_by("seq"))
    assert [e.action for e in entries] == [Action.RUN_STARTED, Action.RUN_FORCED,
                                          Action.RUN_REJECTED]
    assert entries[2].details["error"] == "Not deployed"
    assert {(e.actor, e.ip) for e in entries} == {("alice", "192.0.2.1")}
    assert "tok-production" not in str(list(AuditEntry.objects.values()))


@pytest.mark.parametrize("model", ["run", "auditentry"])
def test_the_admin_shows_runs_and_audit_entries_read_only(admin_client, model):
    assert admin_client.get(reverse(f"admin:runs_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:runs_{model}_add")).status_code == 403


def test_runs_cannot_be_changed_or_deleted_in_the_admin(admin_client, alice, profile):
    import uuid

    from runs.models import Run

    run = Run.objects.create(submit_token=uuid.uuid4(), profile=profile, created_by=alice,
                             environment_id="42", parallelism=4, request_body={})
    change = reverse("admin:runs_run_change", args=[run.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    admin_client.post(change, {"job_id": "99"})
    assert admin_client.post(reverse("admin:runs_run_delete", args=[run.pk]),
                             {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.job_id == ""


# --- the audit log page ---


@pytest.fixture
def auditor(db):
    from django.contrib.auth.models import User

    return grant(User.objects.create_user("carol", password="carol-password"), "view_auditentry")


def test_the_audit_log_needs_its_permission(client, alice, auditor):
    url = reverse("runs:audit_log")
    assert client.get(url).status_code == 302  # anonymous: log in first
    client.force_login(alice)
    assert client.get(url).status_code == 403
    assert client.get(reverse("runs:audit_export")).status_code == 403
    client.force_login(auditor)
    assert client.get(url).status_code == 200


def test_the_audit_log_lists_and_filters(client, auditor):
    audit.record(Action.LOGIN_FAILED, actor="mallory", ip="203.0.113.9")
    audit.record(Action.PROFILE_CHANGED, actor="admin", target="profile 1 Production",
                 details={"fields": ["Snowflake role"]})
    client.force_login(auditor)
    page = client.get(reverse("runs:audit_log")).content.decode()
    assert "mallory" in page and "Snowflake role" in page
    page = client.get(reverse("runs:audit_log"), {"action": "login_failed"}).content.decode()
    assert "mallory" in page and "Snowflake role" not in page
    assert client.get(reverse("runs:audit_log"), {"date_from": "yesterday"}).status_code == 400


@pytest.mark.parametrize("params", [
    {"date_from": "yesterday"},
    {"date_to": "9999-12-31"},  # its next midnight would overflow
    {"date_from": "2024-05-10", "date_to": "2024-05-01"},
])
def test_the_audit_log_answers_400_for_bad_dates(client, auditor, params):
    client.force_login(auditor)
    assert client.get(reverse("runs:audit_log"), params).status_code == 400
    assert client.get(reverse("runs:audit_export"), params).status_code == 400


def test_the_audit_log_filters_days_in_the_site_time_zone_on_the_timestamp(
        client, auditor, settings):
    settings.TIME_ZONE = "America/New_York"  # UTC-4 in May
    times = {
        "before": datetime(2024, 5, 10, 3, 59, 59, tzinfo=UTC),  # 23:59:59 on the 9th
        "first": datetime(2024, 5, 10, 4, 0, tzinfo=UTC),  # midnight on the 10th
        "last": datetime(2024, 5, 11, 3, 59, 59, tzinfo=UTC),  # 23:59:59 on the 10th
        "after": datetime(2024, 5, 11, 4, 0, tzinfo=UTC),
    }
    for actor, at in times.items():
        entry = audit.record(Action.LOGIN_FAILED, actor=actor)
        AuditEntry.objects.filter(pk=entry.pk).update(at=at)
    client.force_login(auditor)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("runs:audit_log"),
                              {"date_from": "2024-05-10", "date_to": "2024-05-10"})
    assert [row.entry.actor for row in response.context["entries"]] == ["last", "first"]
    # A range on the column, which its index serves, rather than a date cast of every row.
    sql = " ".join(q["sql"] for q in queries.captured_queries if "runs_auditentry" in q["sql"])
    assert '"at" >=' in sql and "cast_date" not in sql


def test_the_audit_log_pages_by_keyset(client, auditor, settings):
    from runs import views

    for i in range(views.AUDIT_PAGE_SIZE + 5):
        audit.record(Action.LOGIN_FAILED, actor=f"user{i:03d}")
    client.force_login(auditor)
    first = client.get(reverse("runs:audit_log"), {"action": "login_failed"})
    older = first.context["older"]
    second = client.get(reverse("runs:audit_log"), {"action": "login_failed",
                                                    "before": older})
    seen = [row.entry.seq for page in (first, second) for row in page.context["entries"]]
    assert len(seen) == len(set(seen)) == views.AUDIT_PAGE_SIZE + 5


def test_the_audit_csv_is_complete_and_neutralises_formulas(client, auditor):
    audit.record(Action.LOGIN_FAILED, actor="=HYPERLINK(\"http://evil\")", target='a,"b"\nc')
    client.force_login(auditor)
    response = client.get(reverse("runs:audit_export"))
    body = b"".join(response.streaming_content).decode()
    assert body.startswith("seq,at,actor,ip,action,target,details,hash")
    assert "'=HYPERLINK" in body and '"a,""b""\nc"' in body


def test_the_audit_log_links_run_entries_to_the_run_its_environment_and_outcome(
        client, alice, profile):
    from django.contrib.auth.models import User

    from tests.factories import make_run

    reader = grant(User.objects.create_user("audrey"), "view_auditentry", "view_run")
    run = make_run(profile, alice, run_counter=287756343, coalesce_status="failed")
    audit.record(Action.RUN_STARTED, actor="alice", target=f"run {run.pk}",
                 details={"profile": profile.name, "job_id": "", "force": False,
                          "fields": ["Allowed groups", "Job ID"]})
    audit.record(Action.PROFILE_CHANGED, actor="admin", target=f"profile {profile.pk} Demo")
    client.force_login(reader)
    html = client.get(reverse("runs:audit_log")).content.decode()
    assert f'<a href="{run.get_absolute_url()}">Run 287756343</a>' in html
    assert f'href="/?environment={profile.pk}">{profile.name}</a>' in html
    assert f'<a href="/?environment={profile.pk}">profile {profile.pk} Demo</a>' in html
    assert '<span class="outcome outcome-failed">' in html and "✕</span> Failed</span>" in html
    # Details in words: no Python reprs, nothing for an empty job.
    assert "Forced: no" in html and "Changed: Allowed groups, Job ID" in html
    assert "False" not in html and "[&#x27;" not in html and "Job:" not in html
    # Times with their zone and how long ago.
    assert " UTC</time> <small class=\"ago\">just now</small>" in html


def test_the_audit_log_does_not_link_runs_the_reader_may_not_see(client, alice, profile,
                                                                 auditor):
    from tests.factories import make_run

    run = make_run(profile, alice, coalesce_status="failed")
    audit.record(Action.RUN_STARTED, actor="alice", target=f"run {run.pk}")
    client.force_login(auditor)  # may read the log, not the runs
    html = client.get(reverse("runs:audit_log")).content.decode()
    assert run.get_absolute_url() not in html and "outcome-shape" not in html
    assert f"run {run.pk}" in html
