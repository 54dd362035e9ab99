"""Endpoints for load balancers and monitoring: /healthz, /readyz and /metrics.

None needs a login, and none shows a secret: /healthz and /readyz answer only yes/no facts
as JSON; /metrics answers counts, and only to a request with the METRICS_TOKEN bearer token.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from runs import metrics
from runs.models import Run


@never_cache
@require_GET
def healthz(request):
    """The process answers. No database: a slow database must not get it restarted."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Ready for traffic: the database answers, every migration is applied, and the worker
    keeps up (503 with the failing check otherwise)."""
    checks = {"database": _database()}
    if checks["database"]["ok"]:
        checks["migrations"] = _migrations()
        checks["worker"] = _worker()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return {"ok": False, "problem": "the database does not answer"}
    return {"ok": True}


def _migrations() -> dict:
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return {"ok": False, "problem": f"{len(pending)} migration(s) not applied"}
    return {"ok": True}


def _worker() -> dict:
    """The worker must have swept within two sweep intervals while it has work: runs to
    follow, or a task that is due. With neither, there is nothing to prove it by (the
    sweep chain rests while no run moves)."""
    now = timezone.now()
    late = now - timedelta(seconds=2 * settings.SWEEP_INTERVAL_SECONDS)
    beat = metrics.last_heartbeat()
    seen = {"last_sweep_seconds_ago": round((now - beat).total_seconds())} if beat else {}
    overdue = DBTaskResult.objects.filter(status=TaskResultStatus.READY,
                                          run_after__lt=late).exists()
    if overdue:
        return {"ok": False, "problem": "queued tasks are overdue: is the worker running?",
                **seen}
    if Run.objects.active().exists() and (beat is None or beat < late):
        return {"ok": False, "problem": "runs are waiting to be followed but the worker has "
                "not swept within two sweep intervals", **seen}
    return {"ok": True, **seen}


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus text, for a scraper sending `Authorization: Bearer <METRICS_TOKEN>`.
    404 while no token is configured, so the endpoint does not exist until it is wanted."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponseNotFound("Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        response = HttpResponse("A bearer token is needed.", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.prometheus_text(),
                        content_type="text/plain; version=0.0.4; charset=utf-8")
