"""The operations: start, rerun, cancel, list and read runs, and list environments.

Each one checks exactly what its page checks, in the same order, with the same forms
(RunForm, RerunForm, RunFilterForm), and calls runs.service as the views do. A run the
caller may not see is a 404, as on the pages; a missing permission is a 403.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import QueryDict
from ninja import Header, Path, Query, Router, Status

from runs import run_form, service
from runs.api.auth import ApiError, require_scope
from runs.api.schemas import (
    MAX_ID,
    EnvironmentOut,
    Error,
    RerunIn,
    RunDetailOut,
    RunFilters,
    RunPage,
    StartRunIn,
)
from runs.forms import RerunForm, RunFilterForm, RunForm
from runs.history import RunHistory
from runs.http import client_ip
from runs.models import ApiToken, EnvironmentProfile, Run
from runs.results import failed_first, results_from_json

router = Router(tags=["runs"])
READ, START = ApiToken.Scope.READ.value, ApiToken.Scope.START.value
ERRORS = frozenset({400, 401, 403, 404, 409, 422, 429})
RunId = Path(..., ge=1, le=MAX_ID, description="The run's id in the dashboard.", example=1)
IdempotencyKey = Header(None, alias="Idempotency-Key", max_length=200, description=(
    "Any string of yours, e.g. the CI job's id: a request retried with the same key "
    "starts nothing new and answers with the run the first one started."))
# Keys are per user: two people's "build-42" are two different requests.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("0b1f4c3e-5a43-4b9e-9d1c-6f0e2f5a7c11")


# --- lookups: what the caller may see and run (404 otherwise, as on the pages) ---

def _visible_run(request, pk: int) -> Run:
    run = (Run.objects.visible_to(request.user).select_related("profile", "created_by")
           .filter(pk=pk).first())
    if run is None:
        raise ApiError(404, "not_found", f"There is no run {pk} that you may see.")
    return run


def _runnable_run(request, pk: int) -> Run:
    run = _visible_run(request, pk)
    if not run.profile.user_may_run(request.user):
        raise ApiError(404, "not_found", f"There is no run {pk} that you may act on.")
    return run


def _submit_token(request, key: str | None, operation: str) -> uuid.UUID:
    """The run's one-time submit token: random, or derived from the caller's key, the
    person and the operation (a start's key never answers a rerun, nor another's key)."""
    if not key:
        return uuid.uuid4()
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{request.user.pk}:{operation}:{key}")


def _invalid(form) -> ApiError:
    errors = {field: [e["message"] for e in items]
              for field, items in form.errors.get_json_data().items()}
    problems = [f"{field}: {text}" if field != "__all__" else text
                for field, texts in errors.items() for text in texts]
    # The forms keep parameter problems apart, by row (0-based), in the order sent.
    rows = sorted(getattr(form, "parameter_errors", {}).items())
    if rows:
        errors["parameters"] = [f"Parameter {i + 1}: {message}" for i, message in rows]
        problems += errors["parameters"]
    return ApiError(422, "invalid", " ".join(problems) or "The request is not valid.",
                    errors=errors)


def _with_parameters(data: QueryDict, parameters: dict[str, str]) -> QueryDict:
    # The forms read parameters as the page posts them: parallel name and value lists.
    data.setlist("param_name", list(parameters))
    data.setlist("param_value", list(parameters.values()))
    return data


# --- starting, rerunning, cancelling ---

@router.post("/runs", response={200: RunDetailOut, 201: RunDetailOut, ERRORS: Error},
             summary="Start a run")
def start_run(request, payload: StartRunIn, idempotency_key: str | None = IdempotencyKey):
    """Start a refresh run with the run form's rules. 201 with the new run; 200 with the
    earlier run when the Idempotency-Key was used before."""
    token = require_scope(request, START)
    user = request.user
    profile = EnvironmentProfile.objects.runnable_by(user).filter(pk=payload.environment).first()
    if profile is None:
        raise ApiError(404, "not_found", f"There is no environment {payload.environment} "
                       "that you may run.")
    if payload.force and not user.has_perm("runs.force_run"):
        raise ApiError(403, "forbidden", "You may not force a refresh.")
    data = QueryDict(mutable=True)
    parallelism = payload.parallelism
    data.update({
        "environment": str(profile.pk), "job_id": payload.job_id,
        "include_selector": payload.include_selector,
        "exclude_selector": payload.exclude_selector,
        "parallelism": str(profile.default_parallelism if parallelism is None else parallelism),
        "confirm_name": payload.confirm_name,
        "submit_token": str(_submit_token(request, idempotency_key, "start")),
    })
    for name in ("force", "refresh_all", "notify"):
        if getattr(payload, name):
            data[name] = "on"
    form = RunForm(_with_parameters(data, payload.parameters), user=user)
    if not form.is_valid():
        raise _invalid(form)
    warnings = form.warnings()
    if warnings and not payload.start_anyway:
        # As on the page: nothing is sent until the caller has seen these warnings.
        raise ApiError(422, "selector_warnings",
                       " ".join(message for _, message in warnings)
                       + " Send again with \"start_anyway\": true to start it as it is.",
                       errors={name: [message] for name, message in warnings})
    cleaned = form.cleaned_data
    preview = run_form.stored_preview(cleaned["environment"], cleaned["include_selector"],
                                      cleaned["exclude_selector"], cleaned["job_id"])
    run, created = service.start_run(form.run_request(**preview), user=user,
                                     client_ip=client_ip(request),
                                     submit_token=form.cleaned_data["submit_token"],
                                     via_token=token.name)
    return Status(201 if created else 200, run_detail_json(request, run))


@router.post("/runs/{run_id}/rerun", response={200: RunDetailOut, 201: RunDetailOut,
                                               ERRORS: Error},
             summary="Rerun the failed nodes of a run")
def rerun_run(request, payload: RerunIn, run_id: int = RunId,
              idempotency_key: str | None = IdempotencyKey):
    token = require_scope(request, START)
    run = _runnable_run(request, run_id)
    refusal = service.rerun_refusal(run)
    if refusal:
        raise ApiError(409, "not_rerunnable", refusal)
    parameters = run.parameters if payload.parameters is None else payload.parameters
    data = QueryDict(mutable=True)
    data["submit_token"] = str(_submit_token(request, idempotency_key, f"rerun {run.pk}"))
    form = RerunForm(_with_parameters(data, parameters))
    if not form.is_valid():
        raise _invalid(form)
    rerun, created = service.start_rerun(
        run, parameters=form.cleaned_data["parameters"], user=request.user,
        client_ip=client_ip(request), submit_token=form.cleaned_data["submit_token"],
        via_token=token.name)
    return Status(201 if created else 200, run_detail_json(request, rerun))


@router.post("/runs/{run_id}/cancel", response={202: RunDetailOut, ERRORS: Error},
             summary="Cancel a run")
def cancel_run(request, run_id: int = RunId):
    """Ask Coalesce to cancel the run. 202: Coalesce accepted; the outcome follows."""
    require_scope(request, START)
    if not request.user.has_perm("runs.cancel_run"):
        raise ApiError(403, "forbidden", "You may not cancel runs.")
    run = _runnable_run(request, run_id)
    refusal = service.cancel_refusal(run)
    if refusal:
        raise ApiError(409, "not_cancellable", refusal)
    problem = service.cancel_run(run, user=request.user, client_ip=client_ip(request))
    if problem:
        # Not a 5xx: the dashboard worked; Coalesce refused or could not be reached, and
        # the run's timeline and the audit trail say so. Trying again is allowed.
        raise ApiError(409, "cancel_failed", problem)
    run.refresh_from_db()
    return Status(202, run_detail_json(request, run))


# --- reading ---

@router.get("/runs", response={200: RunPage, ERRORS: Error}, summary="List runs")
def list_runs(request, filters: Query[RunFilters]):
    """The history, newest first, 50 a page, with its filters. Follow older_cursor."""
    require_scope(request, READ)
    user = request.user
    data = QueryDict(mutable=True)
    for name, value in filters.dict().items():
        if value not in (None, False, ""):
            data[name] = "1" if value is True else str(value)
    runs = Run.objects.visible_to(user)
    form = RunFilterForm(data, runs=runs, profiles=EnvironmentProfile.objects.visible_to(user))
    history = RunHistory(runs, form)
    if not history.is_valid():
        raise _invalid(form)
    page = history.page()
    by_pk = Run.objects.select_related("profile", "created_by").only(*LIST_FIELDS).in_bulk(
        [row.pk for row in page.rows])
    return {"runs": [run_json(request, by_pk[row.pk]) for row in page.rows if row.pk in by_pk],
            "older_cursor": page.older.encode() if page.older else None,
            "newer_cursor": page.newer.encode() if page.newer else None}


@router.get("/runs/{run_id}", response={200: RunDetailOut, ERRORS: Error}, summary="Read a run")
def read_run(request, run_id: int = RunId):
    """One run: its outcome, times, node results (failed first) and timeline."""
    require_scope(request, READ)
    return run_detail_json(request, _visible_run(request, run_id))


@router.get("/environments", response={200: list[EnvironmentOut], ERRORS: Error},
            summary="Environments you may run")
def list_environments(request):
    require_scope(request, READ)
    profiles = EnvironmentProfile.objects.runnable_by(request.user).order_by("name")
    return [{"id": p.pk, "name": p.name, "environment_id": p.environment_id,
             "default_job_id": p.default_job_id, "default_parallelism": p.default_parallelism}
            for p in profiles]


# --- the run as JSON ---

# What run_json reads: the list loads no results, request bodies or profile secrets.
LIST_FIELDS = (
    "pk", "profile__name", "created_by__username", "environment_id", "via_token_name",
    "created_at", "job_id", "include_selector", "exclude_selector", "parallelism", "force",
    "run_counter", "status", "coalesce_status", "stopped_following_at",
    "coalesce_started_at", "coalesce_ended_at", "error_message", "rerun_of",
)

def _page_url(request, run: Run) -> str:
    path = run.get_absolute_url()
    site = settings.SITE_URL
    return f"{site}{path}" if site else request.build_absolute_uri(path)


def run_json(request, run: Run) -> dict:
    outcome = run.outcome
    return {
        "id": run.pk, "url": _page_url(request, run), "environment": run.profile.name,
        "environment_id": run.environment_id, "started_by": run.created_by.get_username(),
        "via_token": run.via_token_name, "created_at": run.created_at,
        "job_id": run.job_id, "include_selector": run.include_selector,
        "exclude_selector": run.exclude_selector, "parallelism": run.parallelism,
        "force": run.force, "run_counter": run.run_counter, "start_state": run.status,
        "coalesce_status": run.coalesce_status, "outcome": outcome.value,
        "outcome_label": outcome.label, "finished": not run.is_active,
        "coalesce_started_at": run.coalesce_started_at,
        "coalesce_ended_at": run.coalesce_ended_at, "error_message": run.error_message,
        "rerun_of": run.rerun_of_id,
    }


def run_detail_json(request, run: Run) -> dict:
    nodes = failed_first(results_from_json(run.results))
    return {
        **run_json(request, run),
        "parameters": {str(k): str(v) for k, v in (run.parameters or {}).items()},
        "nodes": [{"name": n.name, "status": n.status, "error": n.error,
                   "duration_seconds": n.duration_seconds, "rows_inserted": n.rows_inserted,
                   "rows_updated": n.rows_updated, "rows_deleted": n.rows_deleted}
                  for n in nodes],
        "timeline": [{"at": e.at, "kind": e.kind, "message": e.message, "actor": e.actor}
                     for e in run.events.all()],
    }
