"""The sweep: following started runs to their end.

Coalesce rate-limits per account, so the sweep costs as few calls as the question allows:
per environment with runs still moving, ONE listing of its runs since the oldest one we
follow (`GET /api/v1/runs`, ordered by start time, with its further pages), plus ONE
results call for each run that has just finished. A run still going gets a results call
only while someone has its page open (`Run.watched_until`, renewed by the page's polling):
at most one per run per sweep, however many tabs, and at most
SWEEP_LIVE_RESULTS_PER_ENVIRONMENT per environment per sweep. The number of calls does not grow with
the number of active runs; polling each run's status instead would cost one call per run
per interval.

Several workers may sweep at once. Each environment is claimed with an atomic
conditional UPDATE of its SweepState row (`next_sweep_at <= now` -> `now + interval`):
exactly one worker wins an environment per interval, on PostgreSQL and SQLite alike, and
a worker that dies mid-sweep leaves nothing locked; the claim simply expires.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from runs import metrics, preview_check
from runs.coalesce import CoalesceError, FailureKind, RunSummary, client_for
from runs.models import (
    TERMINAL,
    CoalesceStatus,
    EnvironmentProfile,
    Outcome,
    Run,
    RunEvent,
    SweepState,
)
from runs.notifications import events as notifications
from runs.results import parse_datetime, results_to_json
from runs.summaries import SUMMARY_FIELDS, summarise

logger = logging.getLogger(__name__)

# A submitting row younger than this is probably still waiting for its answer.
SUBMITTING_GRACE = timedelta(minutes=2)
# How far around an attempt a matching Coalesce run may have started (clock skew, queueing).
MATCH_BEFORE = timedelta(minutes=2)
MATCH_AFTER = timedelta(minutes=10)
MAX_PAGES = 50
# Plain listings (status and times, a few hundred bytes a run) come in pages this big.
LISTING_PAGE = 500
# Detailed listings carry each run's selectors and parameters, so their pages are small:
# at the run form's caps (runs.limits) 20 runs stay far under the
# client's 1 MiB answer cap. A page that is still too big (runs started elsewhere) is
# asked for again in halves, down to single runs, and a run that fits in no page is
# skipped with a note: one odd run never stops following for its environment.
DETAIL_PAGE = 20
MAX_BACKOFF = timedelta(minutes=10)
WRITE_BATCH = 500  # rows per statement (SQLite allows 999 parameters in older builds)


@dataclass
class SweepReport:
    environments: int = 0
    calls: int = 0
    updated: int = 0
    finished: int = 0
    reconciled: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"swept {self.environments} environment(s) with {self.calls} Coalesce call(s): "
                f"{self.updated} run(s) updated, {self.finished} finished, "
                f"{self.reconciled} reconciled, {len(self.errors)} error(s)")


def sweep(*, now: datetime | None = None, interval: float | None = None) -> SweepReport:
    """Refresh every environment that has active runs and that no other worker has
    claimed in this interval. Safe to call from several processes at once."""
    started = time.monotonic()
    now = now or timezone.now()
    interval = settings.SWEEP_INTERVAL_SECONDS if interval is None else interval
    report = SweepReport()
    profile_ids = Run.objects.active().profile_ids()
    _stop_following_old_runs(now, profile_ids)
    with metrics.batched():
        for profile in EnvironmentProfile.objects.filter(pk__in=profile_ids):
            if claim_environment(profile, now, interval):
                report.environments += 1
                _sweep_isolated(profile, now, report)
    metrics.sweep_finished(time.monotonic() - started)
    return report


def _sweep_isolated(profile: EnvironmentProfile, now: datetime, report: SweepReport) -> None:
    """One environment's sweep; whatever it raises stays with that environment, so one
    odd answer from Coalesce never stops the others or the chain of sweeps."""
    try:
        _sweep_environment(profile, now, report)
    except Exception:
        logger.exception("Sweep of %s failed unexpectedly", profile.name)
        report.errors.append(f"{profile.name}: unexpected error (see the log)")
        SweepState.objects.filter(profile=profile).update(
            last_error="The last sweep failed unexpectedly; the log has the details.")


def claim_environment(profile: EnvironmentProfile, now: datetime, interval: float) -> bool:
    """Take this environment for one interval; False when another worker has it."""
    # get_or_create absorbs the race of two workers creating the row (savepoint + get).
    SweepState.objects.get_or_create(profile=profile, defaults={"next_sweep_at": now})
    won = SweepState.objects.filter(
        Q(backoff_until__isnull=True) | Q(backoff_until__lte=now),
        profile=profile, next_sweep_at__lte=now,
    ).update(next_sweep_at=now + timedelta(seconds=interval), last_sweep_at=now)
    return won == 1


def _stop_following_old_runs(now: datetime, profile_ids: set[int]) -> None:
    cutoff = now - timedelta(hours=settings.SWEEP_MAX_AGE_HOURS)
    # By profile, so the query reads the run_active index (status, profile, created_at).
    old = Run.objects.active().filter(profile_id__in=profile_ids, created_at__lt=cutoff)
    for run in old.order_by():
        previous = run.outcome
        run.stopped_following_at = now
        run.save(update_fields=["stopped_following_at"])
        run.log("unfollowed", f"No longer followed: still not finished after "
                f"{settings.SWEEP_MAX_AGE_HOURS} h. Check it in Coalesce.")
        notifications.outcome_changed(run, previous)


def _sweep_environment(profile: EnvironmentProfile, now: datetime, report: SweepReport) -> None:
    runs = list(Run.objects.active().filter(profile=profile).order_by("created_at"))
    try:
        with client_for(profile) as client:
            listing = _valid(_list_since(client, profile, _listing_start(runs), report),
                             profile, now, report)
            _apply_listing(client, runs, listing, now, report)
            unresolved = [r for r in runs if r.status in Run.UNRESOLVED]
            if unresolved:
                details = _valid(_detailed_since(client, profile, unresolved, listing, report),
                                 profile, now, report)
                _reconcile(unresolved, details, now, report)
        _clear_backoff(profile)
    except CoalesceError as exc:
        report.errors.append(f"{profile.name}: {exc.message}")
        if exc.kind == FailureKind.RATE_LIMITED:
            # No in-call retries on 429: the sweep backs off per environment instead of
            # holding a worker asleep.
            _back_off(profile, now, exc.retry_after)
        logger.warning("Sweep of %s failed: %s", profile.name, exc.message)


def _listing_start(runs: list[Run]) -> datetime:
    """The earliest moment a run we follow (or look for) can have started in Coalesce."""
    # max(): a start time stored before times were checked (year 1) must not overflow.
    starts = [max(r.coalesce_started_at or r.created_at, EARLIEST_TIME) for r in runs]
    return min(starts) - MATCH_BEFORE


def _list_since(client, profile, since: datetime, report: SweepReport) -> list[RunSummary]:
    """Every run of the environment started since `since`, without details (status and
    times are all the following needs): one listing and its pages."""
    found: list[RunSummary] = []
    cursor: str | int | None = _iso(since)
    for _ in range(MAX_PAGES):
        page = client.list_runs(environment_id=profile.environment_id, order_by="runStartTime",
                                direction="asc", starting_from=cursor, limit=LISTING_PAGE)
        report.calls += 1
        found.extend(page.runs)
        cursor = _next_cursor(page, cursor, LISTING_PAGE)
        if cursor is None:
            break
    return found


def _detailed_since(client, profile, unresolved: list[Run], listing: list[RunSummary],
                    report: SweepReport) -> list[RunSummary]:
    """The runs that may match an unresolved attempt, with their details (job, selectors,
    parallelism), in small pages that halve when an answer is too big."""
    first = min(r.created_at for r in unresolved) - MATCH_BEFORE
    starts = sorted(s.start_time for s in listing if s.start_time and s.start_time >= first)
    found: list[RunSummary] = []
    cursor, size = _iso(first), DETAIL_PAGE
    for _ in range(MAX_PAGES * 2):
        try:
            page = client.list_runs(environment_id=profile.environment_id,
                                    order_by="runStartTime", direction="asc",
                                    starting_from=cursor, limit=size, detail=True)
        except CoalesceError as exc:
            if exc.kind != FailureKind.BAD_RESPONSE:
                raise
            if size > 1:
                size = max(1, size // 2)
                continue
            cursor = _skip_one(cursor, starts, profile, exc, report)
            if cursor is None:
                break
            continue
        finally:
            report.calls += 1
        found.extend(page.runs)
        cursor = _next_cursor(page, cursor, size)
        if cursor is None:
            break
    return found


def _next_cursor(page, cursor: str | int, size: int) -> str | int | None:
    """Where the listing goes on after `page` (asked for `size` runs from `cursor`):
    Coalesce's `next`, else the last run's start time of a full page; None when it ends
    or the cursor would not move."""
    following = page.next if page.next is not None else _last_start(page.runs, size)
    if not page.runs or following is None or str(following) == str(cursor):
        return None
    return following


def _skip_one(cursor: str | int, starts: list[datetime], profile, exc: CoalesceError,
              report: SweepReport) -> str | None:
    """Past the one run that no page can hold: the next start time the plain listing has."""
    note = f"{profile.name}: skipped a run Coalesce could not list in detail ({exc.message})"
    report.errors.append(note)
    logger.warning("Sweep of %s", note)
    at = parse_datetime(str(cursor))
    later = [s for s in starts if at is None or s > at]
    return _iso(later[0]) if later else None


# Coalesce data is checked before it is stored: a start time in year 1 or 9999 overflowed
# later arithmetic, and a status longer than the column failed the whole write on
# PostgreSQL. Times outside this span are dropped; runs with other odd values are skipped.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
MAX_RUN_COUNTER = 2**63 - 1  # the BigIntegerField
MAX_STATUS = Run._meta.get_field("coalesce_status").max_length
# The timeline's kind is "coalesce_<status>".
MAX_EVENT_STATUS = RunEvent._meta.get_field("kind").max_length - len("coalesce_")


def _valid(listing: list[RunSummary], profile, now: datetime,
           report: SweepReport) -> list[RunSummary]:
    """The listing with out-of-range times dropped and unstorable runs skipped (noted)."""
    kept = []
    for summary in listing:
        problem = _unstorable(summary)
        if problem:
            note = f"{profile.name}: skipped Coalesce run {summary.run_counter}: {problem}"
            report.errors.append(note)
            logger.warning("Sweep of %s", note)
            continue
        kept.append(replace(summary, start_time=_bounded(summary.start_time, now),
                            end_time=_bounded(summary.end_time, now)))
    return kept


def _unstorable(summary: RunSummary) -> str | None:
    if summary.run_counter > MAX_RUN_COUNTER:
        return "its run id is too large"
    if len(summary.status) > min(MAX_STATUS, MAX_EVENT_STATUS):
        return f"its status is longer than {min(MAX_STATUS, MAX_EVENT_STATUS)} characters"
    return None


def _bounded(moment: datetime | None, now: datetime) -> datetime | None:
    if moment is None or not EARLIEST_TIME <= moment <= now + FUTURE_SLACK:
        return None
    return moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _last_start(runs: list[RunSummary], page_size: int) -> str | None:
    """Where a full page without `next` goes on: its last run's start time (the listing's
    own cursor when it is ordered by runStartTime). None after a short page."""
    if len(runs) < page_size or runs[-1].start_time is None:
        return None
    return _iso(runs[-1].start_time)


def _apply_listing(client, runs: list[Run], listing: list[RunSummary], now: datetime,
                   report: SweepReport) -> None:
    by_counter = {summary.run_counter: summary for summary in listing}
    writes = _Writes(now=now, live_budget=settings.SWEEP_LIVE_RESULTS_PER_ENVIRONMENT)
    for run in runs:
        if run.status == Run.Status.STARTED:
            summary = by_counter.get(run.run_counter)
            if summary is not None:
                _update_run(client, run, summary, writes, report)
    writes.save(now)


@dataclass
class _Writes:
    """What one environment's sweep writes, saved together by `save`."""

    now: datetime
    live_budget: int = 0  # results calls left for runs still going whose page is open
    checked: list[int] = field(default_factory=list)  # pks of the runs the listing had
    moved: list[Run] = field(default_factory=list)  # status or times changed
    finished: list[Run] = field(default_factory=list)  # results fetched
    events: list[RunEvent] = field(default_factory=list)
    outcomes: list[tuple[Run, Outcome]] = field(default_factory=list)  # (run, previous)

    def save(self, now: datetime) -> None:
        # One transaction and a few statements, not a commit per run: a per-run save made
        # a sweep over 1,000 active runs take 2-3 s (bench/follow.py). No Coalesce call
        # happens inside it, so the transaction is short.
        with transaction.atomic():
            for first in range(0, len(self.checked), WRITE_BATCH):
                Run.objects.filter(pk__in=self.checked[first:first + WRITE_BATCH]).update(
                    last_checked_at=now)
            Run.objects.bulk_update(self.moved, ["coalesce_status", "coalesce_started_at",
                                                 "coalesce_ended_at", *SUMMARY_FIELDS],
                                    batch_size=WRITE_BATCH)
            Run.objects.bulk_update(self.finished, ["results", "results_fetched_at",
                                                    *SUMMARY_FIELDS], batch_size=WRITE_BATCH)
            RunEvent.objects.bulk_create(self.events, batch_size=WRITE_BATCH)
            for run, previous in self.outcomes:
                notifications.outcome_changed(run, previous)
        preview_check.log_mismatches(self.finished)


def _update_run(client, run: Run, summary: RunSummary, writes: _Writes,
                report: SweepReport) -> None:
    previous = (run.coalesce_status, run.coalesce_started_at, run.coalesce_ended_at)
    writes.outcomes.append((run, run.outcome))
    run.coalesce_status = summary.status
    run.coalesce_started_at = summary.start_time or run.coalesce_started_at
    run.coalesce_ended_at = summary.end_time or run.coalesce_ended_at
    writes.checked.append(run.pk)
    if (run.coalesce_status, run.coalesce_started_at, run.coalesce_ended_at) != previous:
        writes.moved.append(run)
    if summary.status != previous[0]:
        report.updated += 1
        reason = f": {summary.failure_reason}" if summary.failure_reason else ""
        writes.events.append(RunEvent(run=run, kind=f"coalesce_{summary.status}",
                                      message=f"Coalesce reports {summary.status}{reason}."))
    if summary.status in TERMINAL and previous[0] not in TERMINAL:
        report.finished += 1
        # Fetched before anything is written, so the final status and the results land in
        # the same transaction: a run page polling in between would otherwise see a
        # finished run without results, and stop polling for good.
        failure = _load_results(client, run, report)
        summarise(run, summary.failure_reason)
        if failure:
            writes.events.append(RunEvent(run=run, kind="results_failed",
                                          message=_results_failed(failure)))
        else:
            writes.finished.append(run)
    elif _watched_and_running(run, summary.status, writes):
        writes.live_budget -= 1
        if _load_results(client, run, report) is None:
            writes.finished.append(run)


def _watched_and_running(run: Run, status: str, writes: _Writes) -> bool:
    """Whether to fetch a going run's node results in this sweep: someone has its page
    open, Coalesce is running it (a waiting run has no results yet), and the
    environment's budget for this sweep is not spent. A failed fetch is not logged:
    the next sweep tries again, and the final fetch at the end is the one that counts."""
    return (writes.live_budget > 0 and status not in TERMINAL
            and status != CoalesceStatus.WAITING
            and run.watched_until is not None and run.watched_until >= writes.now)


def fetch_results(client, run: Run, report: SweepReport | None = None) -> str | None:
    """Fetch and store the node results (one call). A failure is noted on the run's
    timeline and returned in plain words, not raised; None when the results are stored."""
    failure = _load_results(client, run, report)
    if failure:
        run.log("results_failed", _results_failed(failure))
        return _results_failed(failure)
    summarise(run, _known_failure_reason(run))
    run.save(update_fields=["results", "results_fetched_at", *SUMMARY_FIELDS])
    return None


def _known_failure_reason(run: Run) -> str:
    """Coalesce's failure reason as the timeline recorded it ("" if none): results fetched
    on request keep it in the summary and the search."""
    event = run.events.filter(kind="coalesce_failed").order_by("-pk").first()
    message = event.message if event else ""
    prefix = "Coalesce reports failed: "
    return message[len(prefix):].removesuffix(".") if message.startswith(prefix) else ""


def _load_results(client, run: Run, report: SweepReport | None) -> str | None:
    """Fetch the node results into `run` without saving it: None, or the error message."""
    try:
        nodes = client.get_results(run.run_counter)
    except CoalesceError as exc:
        return exc.message
    finally:
        if report is not None:
            report.calls += 1
    run.results = results_to_json(nodes)
    run.results_fetched_at = timezone.now()
    return None


def _results_failed(message: str) -> str:
    return f"Node results could not be fetched: {message}"


def _reconcile(unresolved: list[Run], listing: list[RunSummary], now: datetime,
               report: SweepReport) -> None:
    known = set(Run.objects.filter(
        environment_id=unresolved[0].environment_id, run_counter__isnull=False,
    ).values_list("run_counter", flat=True))
    candidates_pool = [s for s in listing if s.run_counter not in known]
    for run in unresolved:
        if run.status == Run.Status.SUBMITTING and now - run.created_at < SUBMITTING_GRACE:
            continue
        matches = [s for s in candidates_pool if _matches(run, s)]
        if len(matches) == 1:
            _link(run, matches[0], now)
            candidates_pool.remove(matches[0])
            report.reconciled += 1
        elif now - run.created_at > MATCH_AFTER:
            _leave_for_a_person(run, len(matches), now)


def _matches(run: Run, summary: RunSummary) -> bool:
    if summary.start_time is None:
        return False
    if not run.created_at - MATCH_BEFORE <= summary.start_time <= run.created_at + MATCH_AFTER:
        return False
    return (
        (summary.job_id or "") == run.job_id
        and (summary.include_selector or "") == run.include_selector
        and (summary.exclude_selector or "") == run.exclude_selector
        and (summary.parallelism in (None, run.parallelism))
    )


def _link(run: Run, summary: RunSummary, now: datetime) -> None:
    previous = run.get_status_display()
    previous_outcome = run.outcome
    run.status = Run.Status.STARTED
    run.run_counter = summary.run_counter
    run.run_link = f"{run.profile.base_url.rstrip('/')}/runs/{summary.run_counter}"
    run.coalesce_status = summary.status
    run.coalesce_started_at = summary.start_time
    run.coalesce_ended_at = summary.end_time
    run.last_checked_at = now
    run.save(update_fields=["status", "run_counter", "run_link", "coalesce_status",
                            "coalesce_started_at", "coalesce_ended_at", "last_checked_at"])
    run.log("reconciled", f"Was “{previous}”: found exactly one matching Coalesce run "
            f"(runCounter {summary.run_counter}, same job, selectors and parallelism, started "
            f"{summary.start_time:%H:%M:%S}). Linked to it.")
    notifications.outcome_changed(run, previous_outcome)


def _leave_for_a_person(run: Run, count: int, now: datetime) -> None:
    previous = run.outcome
    run.stopped_following_at = now
    run.save(update_fields=["stopped_following_at"])
    if count == 0:
        note = ("No Coalesce run matches this attempt (same job, selectors and parallelism, "
                "started around the same time): it probably never started.")
    else:
        note = (f"{count} Coalesce runs match this attempt, so it cannot be linked "
                "automatically. Check Coalesce's run history to see which one it was.")
    run.log("needs_attention", note + " Left for a person to check.")
    notifications.outcome_changed(run, previous)


def _back_off(profile: EnvironmentProfile, now: datetime, retry_after: float | None) -> None:
    state = profile.sweep_state
    doubled = max(state.backoff_seconds * 2, settings.SWEEP_INTERVAL_SECONDS)
    seconds = min(max(retry_after or 0, doubled), MAX_BACKOFF.total_seconds())
    state.backoff_seconds = int(seconds)
    state.backoff_until = now + timedelta(seconds=seconds)
    state.last_error = "Rate limited by Coalesce (HTTP 429)."
    state.save(update_fields=["backoff_seconds", "backoff_until", "last_error"])


def _clear_backoff(profile: EnvironmentProfile) -> None:
    SweepState.objects.filter(profile=profile).exclude(backoff_seconds=0, last_error="").update(
        backoff_seconds=0, backoff_until=None, last_error="")
