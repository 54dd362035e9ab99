"""Numbers for operators: counters and last-seen values kept in the database, and their
Prometheus text rendering for /metrics.

Why the database and not prometheus_client: the dashboard runs as several gunicorn workers
plus a task worker, each its own process. prometheus_client keeps counters per process and
needs its multiprocess mode (a shared directory, cleanup on restart) to add them up; a row
per counter gives one answer from any process, survives restarts, and costs one UPDATE per
Coalesce call, which the sweep already keeps few. Run counts are read straight from the
runs table.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min
from django.dispatch import receiver
from django.utils import timezone

from runs.coalesce.signals import coalesce_called
from runs.models import Metric, Run, SweepState

HEARTBEAT = "sweep_last_finished"
SWEEP_SECONDS = "sweep_duration_seconds"
SWEEPS = "sweeps_total"
CALLS = "coalesce_calls_total"
# A run id in a path becomes {id}, so the label set stays small.
_ID = re.compile(r"/\d+(?=/|$)")


def add(name: str, labels: str = "", amount: float = 1) -> None:
    """Add `amount` to a counter, creating it at first use."""
    now = timezone.now()
    if Metric.objects.filter(name=name, labels=labels).update(value=F("value") + amount,
                                                               updated_at=now):
        return
    try:
        with transaction.atomic():
            Metric.objects.create(name=name, labels=labels, value=amount, updated_at=now)
    except IntegrityError:  # another process created it meanwhile
        Metric.objects.filter(name=name, labels=labels).update(value=F("value") + amount,
                                                               updated_at=now)


def put(name: str, value: float) -> None:
    Metric.objects.update_or_create(name=name, labels="",
                                    defaults={"value": value, "updated_at": timezone.now()})


def sweep_finished(seconds: float) -> None:
    """The worker's heartbeat: written at the end of every sweep, busy or idle."""
    with transaction.atomic():
        put(SWEEP_SECONDS, seconds)
        put(HEARTBEAT, timezone.now().timestamp())
        add(SWEEPS)


def last_heartbeat() -> datetime | None:
    row = Metric.objects.filter(name=HEARTBEAT, labels="").values("updated_at").first()
    return row["updated_at"] if row else None


# Inside `batched()` (a sweep), calls are counted in memory and written once at its end: a
# write per call cost a commit each, and doubled a sweep's wall time (bench/sweep.py).
_batch: contextvars.ContextVar[Counter | None] = contextvars.ContextVar("metrics_batch",
                                                                       default=None)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    counts: Counter = Counter()
    token = _batch.set(counts)
    try:
        yield
    finally:
        _batch.reset(token)
        _write(counts)


def _write(counts: Counter) -> None:
    if counts:
        with transaction.atomic():
            for labels, amount in counts.items():
                add(CALLS, labels, amount)


@receiver(coalesce_called)
def _count_call(sender, *, method: str, path: str, outcome: str, **kwargs) -> None:
    labels = f'endpoint="{method} {_ID.sub("/{id}", path)}",status="{_label(outcome)}"'
    counts = _batch.get()
    if counts is not None:
        counts[labels] += 1
        return
    # A savepoint: should counting fail, a caller's transaction is not left broken.
    with transaction.atomic():
        add(CALLS, labels)


def _label(value: str) -> str:
    return re.sub(r'[^A-Za-z0-9_ ./{}-]', "_", value)[:40]


def prometheus_text() -> str:
    """The metrics in Prometheus' text format (version 0.0.4)."""
    now = timezone.now()
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP dashboard_{name} {text}", f"# TYPE dashboard_{name} {kind}"])
        for labels, value in samples:
            lines.append(f"dashboard_{name}{{{labels}}} {value:g}" if labels
                         else f"dashboard_{name} {value:g}")

    runs = Run.objects.order_by().values("status").annotate(n=Count("id"))
    metric("runs_total", "counter", "Run attempts, by how the start ended.",
           [(f'status="{r["status"]}"', r["n"]) for r in runs])
    stored = {(m.name, m.labels): m for m in Metric.objects.all()}
    calls = [(labels, m.value) for (name, labels), m in sorted(stored.items()) if name == CALLS]
    metric("coalesce_calls_total", "counter", "Calls to Coalesce, by endpoint and status.",
           calls)
    metric("coalesce_rate_limited_total", "counter", "Coalesce calls answered 429.",
           [("", sum(v for labels, v in calls if 'status="429"' in labels))])
    sweeps = stored.get((SWEEPS, ""))
    metric("sweeps_total", "counter", "Sweeps the worker finished.",
           [("", sweeps.value if sweeps else 0)])
    duration = stored.get((SWEEP_SECONDS, ""))
    metric("sweep_duration_seconds", "gauge", "How long the last sweep took.",
           [("", duration.value)] if duration else [])
    beat = stored.get((HEARTBEAT, ""))
    metric("worker_heartbeat_age_seconds", "gauge", "Seconds since the worker last swept.",
           [("", (now - beat.updated_at).total_seconds())] if beat else [])
    metric("worker_lag_seconds", "gauge",
           "How late the most overdue environment with active runs is for its sweep.",
           [("", _sweep_lag(now))])
    metric("active_runs", "gauge", "Runs still being followed.",
           [("", Run.objects.active().count())])
    return "\n".join(lines) + "\n"


def _sweep_lag(now: datetime) -> float:
    due = SweepState.objects.filter(profile_id__in=Run.objects.active().profile_ids()).aggregate(
        first=Min("next_sweep_at"))["first"]
    return max(0.0, (now - due).total_seconds()) if due else 0.0
