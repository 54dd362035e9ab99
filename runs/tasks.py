"""Background tasks, through Django's tasks API (the django-tasks backport on 5.2).

The sweep reschedules itself: each run enqueues the next one `FOLLOW_INTERVAL_SECONDS`
later, unless one is already waiting. Starting a run, and a run page that polls, call
`ensure_sweeping()`, which restarts the chain if a worker died with it. Claims in
runs.follow make a doubled chain harmless: it finds every environment already swept.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from runs import follow


@task()
def sweep_runs() -> str:
    report = follow.sweep()
    if follow.active_runs().exists():
        schedule_sweep(delay=settings.FOLLOW_INTERVAL_SECONDS)
    return report.summary()


def _sweep_waiting() -> bool:
    """Whether a sweep is already queued (only the database backend can tell)."""
    if not isinstance(sweep_runs.get_backend(), DatabaseBackend):
        return False
    # Not .ready(): that leaves out tasks whose run_after is still ahead, which is exactly
    # how the next sweep waits, so every call would queue another chain.
    return DBTaskResult.objects.filter(status=TaskResultStatus.READY,
                                       task_path=sweep_runs.module_path).exists()


def schedule_sweep(*, delay: float = 0) -> None:
    if not _sweep_waiting():
        sweep_runs.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue()


def ensure_sweeping() -> None:
    """Make sure active runs are being followed (cheap: two indexed queries)."""
    if follow.active_runs().exists():
        schedule_sweep(delay=settings.FOLLOW_INTERVAL_SECONDS)
