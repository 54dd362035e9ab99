"""Background tasks, through Django's tasks API (the django-tasks backport on 5.2).

The sweep reschedules itself: each run enqueues the next one `SWEEP_INTERVAL_SECONDS`
later while runs are active, unless one is already waiting, and it does so even when the
sweep raised, so the chain never stops on a bad answer. The chain lives in the database,
so a worker that dies loses nothing: the next worker picks the waiting sweep up.

Who starts the chain: the service, when a run starts or reruns (`sweep_soon`: the new
run's environment is swept right away, so its page shows Coalesce's first status within
a few seconds instead of an interval later), and
`manage.py schedule_sweep` after a deploy. Pages never do. A GET of a run page used to
queue a sweep "to heal a lost chain", but a GET that writes is a surprise (and a load
cost on the busiest endpoint), and with the chain kept in the database and rescheduled in
`finally` there is no lost chain left to heal. Claims in runs.sweep make a doubled chain
harmless: it finds every environment already swept.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from runs import catalogue, sweep
from runs.models import EnvironmentProfile, Run, SweepState


@task()
def sweep_runs() -> str:
    try:
        return sweep.sweep().summary()
    finally:
        ensure_sweeping()


@task()
def refresh_node_catalogue(profile_id: int) -> str:
    """Fetch one profile's node list (queued by runs.catalogue.request_refresh)."""
    profile = EnvironmentProfile.objects.filter(pk=profile_id).first()
    return catalogue.refresh(profile) if profile else f"no profile {profile_id}"


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


def sweep_soon(profile: EnvironmentProfile) -> None:
    """Sweep `profile`'s environment now: make it due and bring the waiting sweep forward
    (or queue one). Still one chain, and still one claim per environment: the sweep that
    runs claims it with the same conditional UPDATE, and an environment backing off after
    a 429 stays backed off."""
    now = timezone.now()
    SweepState.objects.filter(profile=profile, next_sweep_at__gt=now).update(next_sweep_at=now)
    if isinstance(sweep_runs.get_backend(), DatabaseBackend):
        moved = DBTaskResult.objects.filter(status=TaskResultStatus.READY,
                                            task_path=sweep_runs.module_path,
                                            run_after__gt=now).update(run_after=now)
        if moved:
            return
    schedule_sweep(delay=0)


def ensure_sweeping() -> None:
    """Make sure active runs are being followed (cheap: two indexed queries)."""
    if Run.objects.active().exists():
        schedule_sweep(delay=settings.SWEEP_INTERVAL_SECONDS)
