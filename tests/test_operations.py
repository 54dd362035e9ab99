"""/healthz, /readyz, /metrics and JSON logs: what an operator's probes and scrapers see."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from runs import sweep
from runs.log_format import JsonFormatter
from runs.models import Metric
from runs.redaction import ScrubSecretsFilter, secrets_in_use
from tests.factories import make_run

pytestmark = pytest.mark.django_db

LIST_URL = "https://app.coalescesoftware.io/api/v1/runs"


def test_healthz_answers_without_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_with_nothing_to_follow(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] and body["checks"]["migrations"]["ok"]


def test_readyz_is_not_ready_while_runs_wait_for_a_silent_worker(client, alice, profile):
    make_run(profile, alice, run_counter=5, coalesce_status="running")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "worker" in response.json()["checks"]["worker"]["problem"]
    with responses.RequestsMock() as coalesce:
        coalesce.get(LIST_URL, json={"data": []})
        sweep.sweep()  # the worker's heartbeat
    assert client.get("/readyz").status_code == 200


def test_readyz_shows_no_secret_and_needs_no_login(client, profile):
    body = client.get("/readyz").content.decode()
    assert "token" not in body.lower() and "password" not in body.lower()


def test_metrics_need_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_metrics_count_runs_calls_429s_and_the_sweep(client, settings, alice, profile):
    settings.METRICS_TOKEN = "scrape-me"
    make_run(profile, alice, run_counter=5, coalesce_status="running")
    with responses.RequestsMock() as coalesce:
        coalesce.get(LIST_URL, status=429, json={})
        sweep.sweep()
        sweep.sweep(now=timezone.now() + timedelta(hours=1))
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).content.decode()
    assert 'dashboard_runs_total{status="started"} 1' in text
    assert 'dashboard_coalesce_calls_total{endpoint="GET /api/v1/runs",status="429"} 2' in text
    assert "dashboard_coalesce_rate_limited_total 2" in text
    assert "dashboard_sweeps_total 2" in text
    assert "dashboard_sweep_duration_seconds " in text
    assert "dashboard_worker_lag_seconds " in text


def test_a_run_id_in_a_path_is_one_label(alice, profile):
    from runs.coalesce.client import CoalesceClient
    from runs.coalesce.signals import coalesce_called

    for path in ("/api/v1/runs/5/results", "/api/v1/runs/6/results"):
        coalesce_called.send(CoalesceClient, method="GET", path=path, outcome="200")
    assert Metric.objects.get(name="coalesce_calls_total").value == 2


def test_json_logs_are_one_scrubbed_object_per_line():
    record = logging.LogRecord("runs", logging.WARNING, __file__, 1,
                               "Coalesce said: %s\nsecond line", ("tok-SECRET-1234",), None)
    with secrets_in_use("tok-SECRET-1234"):
        ScrubSecretsFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "Coalesce said: [redacted]\nsecond line"
    assert (entry["level"], entry["logger"]) == ("WARNING", "runs")


def test_the_probes_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(reverse("healthz")).status_code == 200
