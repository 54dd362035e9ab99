"""Notifications: who hears about which outcome, and delivery through real loopback
servers (SMTP and a webhook receiver) with retries, signatures and one message per event."""

from __future__ import annotations

import importlib.util
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs.models import Run
from runs.notifications import delivery, events, transports
from runs.notifications.models import Delivery, Destination, NotificationRule, RunSubscription
from tests.cases import FAILED_RESULTS
from tests.factories import make_run
from tests.notify_servers import smtp_server, webhook_receiver

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "whsec-test-0123456789"
_spec = importlib.util.spec_from_file_location(
    "webhook_receiver", Path(__file__).resolve().parents[1] / "docs" / "webhook_receiver.py")
receiver_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(receiver_module)


@pytest.fixture(autouse=True)
def loopback_webhooks(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.SITE_URL = "https://refresh.example.com"


def destination(kind, *, url="", secret="", email_to="") -> Destination:
    d = Destination(name=f"{kind} {Destination.objects.count()}", kind=kind, email_to=email_to)
    d.set_secret("url", url)
    d.set_secret("signing_secret", secret)
    d.save()
    return d


def rule(profile, dest, *events_wanted) -> NotificationRule:
    return NotificationRule.objects.create(profile=profile, destination=dest,
                                           events=list(events_wanted))


def failed_run(profile, user) -> Run:
    """A run that was running and has just failed in Coalesce, with node results."""
    return make_run(profile, user, run_counter=31, coalesce_status="failed",
                    results=FAILED_RESULTS)


def deliver_all() -> list[str]:
    return [delivery.deliver(d.pk) for d in Delivery.objects.order_by("pk")]


# --- who hears about what ---


def test_an_outcome_writes_one_delivery_per_matching_rule(alice, profile, staging):
    hook = destination(Destination.Kind.WEBHOOK, url="https://hooks.example.com/x")
    slack = destination(Destination.Kind.SLACK, url="https://hooks.slack.com/services/T/B/x")
    rule(profile, hook, "failed", "succeeded")
    rule(profile, slack, "succeeded")
    rule(staging, slack, "failed")
    run = failed_run(profile, alice)
    written = events.outcome_changed(run, "running")
    assert [d.destination for d in written] == [hook]
    again = events.outcome_changed(run, "running")  # another worker saw the same change
    assert again == [] and Delivery.objects.count() == 1
    assert events.outcome_changed(run, "failed") == []  # no change, no event


def test_notify_me_mails_the_person_who_started_it(alice, profile, coalesce, mailoutbox):
    from runs.service import RunRequest, start_run

    coalesce.post("https://app.coalescesoftware.io/scheduler/startRun", status=400,
                  json={"error": {"errorString": "Bad job"}})
    run, _ = start_run(RunRequest(profile=profile, job_id="7", notify=True), user=alice,
                       client_ip=None, submit_token=__import__("uuid").uuid4())
    assert RunSubscription.objects.filter(run=run, user=alice).exists()
    [row] = Delivery.objects.all()
    assert row.event == "could_not_start" and row.email == "alice@example.com"
    assert DBTaskResult.objects.filter(task_path__endswith="send_delivery").exists()
    deliver_all()
    [message] = mailoutbox
    assert message.subject == f"Run {run.pk} on Production: Couldn't start"
    assert f"https://refresh.example.com/runs/{run.pk}/" in message.body


def test_the_sweep_notifies_when_a_run_ends(alice, profile, coalesce):
    from runs import sweep

    hook = destination(Destination.Kind.WEBHOOK, url="https://hooks.example.com/x")
    rule(profile, hook, "succeeded")
    make_run(profile, alice, run_counter=31, coalesce_status="running", job_id="7")
    base = "https://app.coalescesoftware.io"
    coalesce.get(f"{base}/api/v1/runs", json={"data": [
        {"id": 31, "runStatus": "completed", "runType": "job", "environmentID": "42",
         "runStartTime": "2024-01-01T00:00:00Z", "runEndTime": "2024-01-01T00:05:00Z"}]})
    coalesce.get(f"{base}/api/v1/runs/31/results", json={"data": []})
    sweep.sweep()
    [row] = Delivery.objects.all()
    assert row.event == "succeeded" and row.destination == hook


# --- delivery through real servers ---


def test_email_goes_through_a_real_smtp_server(alice, profile, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    run = failed_run(profile, alice)
    dest = destination(Destination.Kind.EMAIL, email_to="data-team@example.com")
    rule(profile, dest, "failed")
    events.outcome_changed(run, "running")
    with smtp_server() as (port, inbox):
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        assert deliver_all() == [f"delivery {Delivery.objects.get().pk}: sent"]
    [(sender, to, content)] = inbox.messages
    assert to == ["data-team@example.com"]
    assert f"Subject: Run {run.pk} on Production: Failed" in content
    assert "FCT_BROKEN" in content and "invalid identifier 'AMOUNT'" in content


def test_a_webhook_is_signed_and_the_readme_receiver_accepts_it(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        rule(profile, destination(Destination.Kind.WEBHOOK, url=receiver.url, secret=SECRET),
             "failed")
        events.outcome_changed(run, "running")
        deliver_all()
    [got] = receiver.received
    header = got.headers[transports.SIGNATURE_HEADER]
    assert receiver_module.verify(SECRET, header, got.body)
    assert not receiver_module.verify("another secret", header, got.body)
    assert not receiver_module.verify(SECRET, header, got.body + b" ")
    old = transports.sign(SECRET, int(timezone.now().timestamp()) - 3600, got.body)
    assert not receiver_module.verify(SECRET, old, got.body)  # a replay an hour later
    body = json.loads(got.body)
    assert body["event"] == "failed" and body["run"]["failed_nodes"][0]["name"] == "FCT_BROKEN"
    assert got.headers["X-Dashboard-Event"] == "failed"


def test_the_webhook_body_matches_its_json_schema(alice, profile):
    jsonschema = pytest.importorskip("jsonschema")
    from runs.notifications import messages

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" /
                         "notification-webhook.schema.json").read_text())
    jsonschema.validate(messages.facts(failed_run(profile, alice), "failed"), schema)


def test_slack_gets_outcome_who_when_failed_nodes_and_the_link(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        rule(profile, destination(Destination.Kind.SLACK, url=receiver.url), "failed")
        events.outcome_changed(run, "running")
        deliver_all()
    text = json.loads(receiver.received[0].body)["blocks"][0]["text"]["text"]
    for expected in ("Failed", "Production", "alice", "FCT_BROKEN",
                     "invalid identifier 'AMOUNT'", f"https://refresh.example.com/runs/{run.pk}/"):
        assert expected in text


def test_a_500_is_retried_later_and_then_delivered(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        receiver.statuses = [500]
        rule(profile, destination(Destination.Kind.WEBHOOK, url=receiver.url), "failed")
        events.outcome_changed(run, "running")
        row = Delivery.objects.get()
        assert "retry at" in delivery.deliver(row.pk)
        row.refresh_from_db()
        assert row.status == "pending" and row.attempts == 1
        assert row.last_error == "The destination answered HTTP 500."
        assert row.next_attempt_at > timezone.now() + timedelta(seconds=25)
        assert "not due" in delivery.deliver(row.pk)  # too early: nothing sent
        Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert delivery.deliver(row.pk).endswith("sent")
    assert len(receiver.received) == 2
    row.refresh_from_db()
    assert row.status == "sent" and row.attempts == 2 and row.last_error == ""


def test_a_400_is_not_retried(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        receiver.statuses = [400]
        rule(profile, destination(Destination.Kind.WEBHOOK, url=receiver.url), "failed")
        events.outcome_changed(run, "running")
        DBTaskResult.objects.all().delete()
        deliver_all()
        Delivery.objects.update(next_attempt_at=timezone.now())
        deliver_all()
    assert len(receiver.received) == 1
    row = Delivery.objects.get()
    assert row.status == "failed" and row.attempts == 1
    assert not DBTaskResult.objects.exists()  # no retry queued


def test_it_gives_up_after_24_hours(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        receiver.statuses = [503]
        rule(profile, destination(Destination.Kind.WEBHOOK, url=receiver.url), "failed")
        events.outcome_changed(run, "running")
        Delivery.objects.update(created_at=timezone.now() - timedelta(hours=24))
        deliver_all()
    assert Delivery.objects.get().status == "gave_up"


def test_backoff_doubles_up_to_four_hours():
    assert [delivery.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert delivery.retry_delay(20) == timedelta(hours=4)


def test_a_slow_destination_does_not_hold_up_another(alice, profile, monkeypatch):
    monkeypatch.setattr(transports, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(transports, "CONNECT_TIMEOUT", 0.5)
    run = failed_run(profile, alice)
    with webhook_receiver() as slow, webhook_receiver() as fast:
        slow.delay = 3
        rule(profile, destination(Destination.Kind.WEBHOOK, url=slow.url), "failed")
        rule(profile, destination(Destination.Kind.WEBHOOK, url=fast.url), "failed")
        events.outcome_changed(run, "running")
        results = deliver_all()
    assert "retry at" in results[0] and results[1].endswith("sent")
    assert Delivery.objects.order_by("pk").first().last_error == "No answer within 1.0 s."


# --- URLs are secrets, and only some are allowed ---


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://hooks.example.com/x", False),
    ("https://10.1.2.3/x", False),
    ("https://169.254.169.254/latest", False),
    ("https://192.168.0.10/x", False),
    ("https://user:pw@hooks.example.com/x", False),
])
def test_it_refuses_unsafe_urls(url, allowed, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert (transports.check_url(url) is None) is allowed


def test_loopback_needs_the_setting(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert transports.check_url("https://127.0.0.1/x") is not None
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert transports.check_url("http://127.0.0.1:8080/x") is None


def test_a_refused_url_is_not_retried_and_not_logged(alice, profile, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    slack_url = "https://127.0.0.1/services/T000/B000/SLACKTOKENCANARY"
    rule(profile, destination(Destination.Kind.SLACK, url=slack_url), "failed")
    events.outcome_changed(failed_run(profile, alice), "running")
    with responses.RequestsMock():
        deliver_all()
    row = Delivery.objects.get()
    assert row.status == "failed" and "SLACKTOKENCANARY" not in row.last_error
    assert "SLACKTOKENCANARY" not in Destination.objects.get().url_ct


# --- two workers, one message ---


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="needs PostgreSQL: SQLite serialises writers, so workers cannot race")
def test_two_workers_send_one_message(alice, profile):
    run = failed_run(profile, alice)
    with webhook_receiver() as receiver:
        rule(profile, destination(Destination.Kind.WEBHOOK, url=receiver.url), "failed")
        start = threading.Barrier(2)
        errors = []

        def worker():
            try:
                start.wait()
                events.outcome_changed(run, "running")  # both saw the run fail
                for row in Delivery.objects.all():
                    delivery.deliver(row.pk)
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert Delivery.objects.count() == 1 and len(receiver.received) == 1


# --- the admin ---


def test_the_admin_keeps_destination_urls_write_only(admin_client):
    add = "/admin/runs/destination/add/"
    refused = admin_client.post(add, {"name": "Slack", "kind": "slack",
                                      "url": "http://hooks.slack.com/services/T/B/SECRETPART"})
    assert "Only https URLs are allowed." in refused.content.decode()
    assert "SECRETPART" not in refused.content.decode()
    admin_client.post(add, {"name": "Slack", "kind": "slack",
                            "url": "https://hooks.slack.com/services/T/B/SECRETPART"})
    saved = Destination.objects.get()
    assert saved.get_secret("url").endswith("SECRETPART") and "SECRETPART" not in saved.url_ct
    page = admin_client.get(f"/admin/runs/destination/{saved.pk}/change/").content.decode()
    assert "SECRETPART" not in page and "Stored; type a new value" in page
    admin_client.post(f"/admin/runs/destination/{saved.pk}/change/",
                      {"name": "Slack", "kind": "slack", "url": ""})
    saved.refresh_from_db()
    assert saved.get_secret("url").endswith("SECRETPART")  # empty keeps what is stored


def test_key_rotation_re_encrypts_destination_urls(settings):
    from runs import encryption
    from runs.rotation import rotate_credentials

    old = encryption.key_ring().primary
    saved = destination(Destination.Kind.SLACK, url="https://hooks.slack.com/services/T/B/x")
    assert encryption.kid_of(saved.url_ct) == old
    new = encryption.generate_key("new1")
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{new},{settings.CREDENTIALS_ENCRYPTION_KEYS}"
    report = rotate_credentials()
    saved.refresh_from_db()
    assert report.rotated == 1 and encryption.kid_of(saved.url_ct) == "new1"
    assert saved.get_secret("url") == "https://hooks.slack.com/services/T/B/x"


def test_a_delivery_whose_task_was_lost_is_queued_again(alice, profile):
    import io

    from django.core.management import call_command

    rule(profile, destination(Destination.Kind.WEBHOOK, url="https://hooks.example.com/x"),
         "failed")
    events.outcome_changed(failed_run(profile, alice), "running")
    DBTaskResult.objects.all().delete()  # the worker died with the task
    out = io.StringIO()
    call_command("requeue_notifications", stdout=out)
    assert "0 notification(s)" in out.getvalue()  # not overdue yet
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    call_command("requeue_notifications", stdout=out)
    assert "1 notification(s) queued again." in out.getvalue()
    assert DBTaskResult.objects.filter(task_path__endswith="send_delivery").count() == 1
