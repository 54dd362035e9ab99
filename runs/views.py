from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotModified,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, push_url

from runs import catalogue, form_views, run_form, service
from runs.audit_log import rows_for as audit_rows
from runs.charts import charts_for
from runs.exports import audit_csv_chunks, csv_chunks, csv_response, export_batches
from runs.forms import AuditFilterForm, RerunForm, RunFilterForm, RunForm
from runs.history import PAGE_SIZE, RunHistory, moving_ids, rows_for
from runs.http import AuthenticatedHttpRequest, client_ip
from runs.live import LiveState, live_state
from runs.models import AuditEntry, EnvironmentProfile, Preset, Run
from runs.results import failed_first, progress, results_from_json


def _get_profile_for_user(request: AuthenticatedHttpRequest, pk) -> EnvironmentProfile:
    """The profile if this user may run it; 404 otherwise (even when it exists)."""
    try:
        return EnvironmentProfile.objects.runnable_by(request.user).get(pk=int(pk))
    except (ValueError, TypeError, EnvironmentProfile.DoesNotExist):
        raise Http404("No such environment.") from None


def _get_run_for_user(request: AuthenticatedHttpRequest, pk: int) -> Run:
    runs = Run.objects.visible_to(request.user).select_related("profile", "created_by")
    return get_object_or_404(runs, pk=pk)


def _get_runnable_run_for_user(request: AuthenticatedHttpRequest, pk: int) -> Run:
    """A run this user may act on (fetch results, cancel, rerun): they must be allowed to
    run its profile, not only see it. 404 otherwise, as for a run they cannot see."""
    run = _get_run_for_user(request, pk)
    if not run.profile.user_may_run(request.user):
        raise Http404("No such run.")
    return run


@login_required
@require_GET
def run_list(request: HttpRequest):
    history = _history(request)
    if not history.is_valid():
        return _invalid_filters(request, history, "runs/run_list.html#run-rows")
    page = history.page()
    if not request.htmx:
        return render(request, "runs/run_list.html", {"history": history, "page": page})
    response = render(request, "runs/run_list.html#run-rows", {"history": history, "page": page})
    # The address bar gets the page's own URL: no empty filters from the form, and no
    # cursor once paging back has reached the newest runs.
    query = history.page_querystring(page)
    return push_url(response, f"{request.path}?{query}" if query else request.path)


@login_required
@require_GET
def run_statuses(request: HttpRequest):
    """The status cells of the history's moving runs, in one request for the whole page:
    out-of-band swaps, then a poller for those still moving (286 once none is)."""
    try:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i][:PAGE_SIZE]
    except ValueError:
        return HttpResponseBadRequest("ids must be run numbers separated by commas.")
    # A number no row can have would overflow the database's integer (a 500 on SQLite).
    if any(not 0 < i < 2**63 for i in ids):
        return HttpResponseBadRequest("ids must be run numbers separated by commas.")
    runs = Run.objects.visible_to(request.user).filter(pk__in=ids).order_by("-created_at", "-id")
    rows = rows_for(runs)
    moving = moving_ids(rows)
    html = render_to_string("runs/run_list.html#run-statuses",
                            {"rows": rows, "moving": moving, "oob": True}, request=request)
    return HttpResponse(html) if moving else HttpResponseStopPolling(html)


@login_required
@require_GET
def run_charts(request: HttpRequest):
    """The history's charts: the fragment the history page loads, or (without
    JavaScript) the history page with the charts rendered in place."""
    history = _history(request)
    if not history.is_valid():
        return _invalid_filters(request, history, "runs/run_list.html#history-charts")
    profiles = EnvironmentProfile.objects.visible_to(request.user)
    context = {"history": history, "charts": charts_for(history, profiles)}
    if request.htmx:  # the closed box's one-line summary is swapped out of band
        return render(request, "runs/run_list.html#history-charts", {**context, "oob": True})
    return render(request, "runs/run_list.html", {**context, "page": history.page()})


@login_required
@require_GET
def export_runs(request: HttpRequest):
    history = _history(request)
    if not history.is_valid():
        return _invalid_filters(request, history)
    return csv_response(csv_chunks(export_batches(history)), "run-history")


def _history(request: HttpRequest) -> RunHistory:
    user = request.user
    runs = Run.objects.visible_to(user)
    form = RunFilterForm(request.GET, runs=runs,
                         profiles=EnvironmentProfile.objects.visible_to(user))
    return RunHistory(runs, form)


def _invalid_filters(request: HttpRequest, history: RunHistory, fragment: str = ""):
    """Bad filters: a 400 page that shows the form's errors. An htmx request gets its
    fragment with the errors and a 200, because htmx 2 swaps only 2xx answers."""
    if request.htmx and fragment:
        return render(request, fragment, {"history": history})
    return render(request, "runs/run_list.html", {"history": history}, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def new_run(request: AuthenticatedHttpRequest):
    if (request.method == "GET" and not request.GET.get("environment")
            and not EnvironmentProfile.objects.runnable_by(request.user).exists()):
        # Say why instead of showing a form whose environment list is empty.
        return render(request, "runs/run_form.html", {"cannot_run": True})
    if request.method == "POST" and request.POST.get("form_action"):
        # A button that reshapes the form (defaults, parameter rows, node picks, search,
        # save a preset, refresh the node list): re-render, validate nothing, send nothing.
        return _reshape_run_form(request, request.POST["form_action"])
    if request.method == "POST":
        return _submit_run(request)
    initial, rows = _initial(request, request.GET)
    return _render_run_form(request, RunForm(user=request.user, initial=initial), rows=rows)


STATE_FIELDS = ("job_id", "include_selector", "exclude_selector", "parallelism", "confirm_name")


def _initial(request: AuthenticatedHttpRequest, state) -> tuple[dict, list[tuple[str, str]]]:
    """Initial values and parameter rows from the page's own state (POSTed by a reshaping
    button, or a ?environment= link), with the environment's defaults filled in when it
    was just chosen; or from a past run (?from_run=) or a preset (?preset=)."""
    initial = {name: state.get(name, "") for name in STATE_FIELDS}
    initial["force"] = bool(state.get("force"))
    initial["refresh_all"] = bool(state.get("refresh_all"))
    if "form_action" in state:  # a reshaped page keeps the box as the person left it
        initial["notify"] = bool(state.get("notify"))
    initial["submit_token"] = _token_from(state.get("submit_token"))
    initial["preset"] = state.get("preset", "")
    rows = _posted_rows(state)
    source = _run_to_copy(request, state) or _preset_to_load(request, state)
    if source is not None:
        initial.update(environment=source.profile_id, job_id=source.job_id,
                       include_selector=source.include_selector,
                       exclude_selector=source.exclude_selector,
                       parallelism=source.parallelism,
                       preset=source.pk if isinstance(source, Preset) else "")
        rows = list(source.parameters.items())  # never the force option: not copied
    elif state.get("environment"):
        profile = _get_profile_for_user(request, state["environment"])
        initial["environment"] = profile.pk
        if state.get("form_action") == "defaults" or "parallelism" not in state:
            initial["job_id"] = profile.default_job_id
            initial["parallelism"] = profile.default_parallelism
    initial["parallelism"] = initial["parallelism"] or 16
    return initial, rows or [("", "")]


def _run_to_copy(request: AuthenticatedHttpRequest, state) -> Run | None:
    """The run behind "Run again": one the user may see, on a profile they may run."""
    if not state.get("from_run"):
        return None
    run = Run.objects.visible_to(request.user).filter(
        pk=_int_or_none(state["from_run"])).select_related("profile").first()
    if run is None or not run.profile.user_may_run(request.user):
        messages.error(request, "You can't start runs like that one: it is not a run on an "
                       "environment you may run.")
        return None
    return run


def _preset_to_load(request: AuthenticatedHttpRequest, state) -> Preset | None:
    if not state.get("preset") or state.get("form_action"):
        return None
    preset = Preset.usable_by(request.user).filter(pk=_int_or_none(state["preset"])).first()
    if preset is None:
        messages.error(request, "That preset doesn't exist or isn't shared with you.")
    return preset


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _token_from(value: str | None) -> uuid.UUID:
    """Keep the page's one-time token across re-renders; mint one for a fresh page."""
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return uuid.uuid4()


def _posted_rows(state) -> list[tuple[str, str]]:
    names, values = state.getlist("param_name"), state.getlist("param_value")
    rows = list(zip(names, values + [""] * (len(names) - len(values)), strict=False))
    action = state.get("form_action", "")
    if action.startswith("remove_param:") and action[13:].isdigit():
        index = int(action[13:])
        if index < len(rows):
            del rows[index]
    if action == "add_param":
        rows.append(("", ""))
    return rows


def _parameter_rows(request: HttpRequest, form) -> list[tuple[str, str]]:
    """The rerun form's rows (the run form gets its rows from _initial)."""
    if form.is_bound:
        return form.parameter_rows() or [("", "")]
    return _posted_rows(request.POST if request.method == "POST" else request.GET) or [("", "")]


def _reshape_run_form(request: AuthenticatedHttpRequest, action: str):
    initial, rows = _initial(request, request.POST)
    extra: dict = {}
    profile = (_get_profile_for_user(request, initial["environment"])
               if initial.get("environment") else None)
    if profile is not None and action.partition(":")[0] in ("include", "exclude"):
        extra["notice"] = form_views.pick_node(profile, action, initial)
    elif profile is not None and action == "save_preset":
        extra.update(form_views.save_preset(request, profile, initial, rows))
    elif profile is not None and action == "refresh_catalogue":
        catalogue.request_refresh(profile, force=True)
    return _render_run_form(request, RunForm(user=request.user, initial=initial), rows=rows,
                            **extra)


def _render_run_form(request: AuthenticatedHttpRequest, form: RunForm, *,
                     rows: list[tuple[str, str]] | None = None, **extra):
    if rows is None:
        rows = form.parameter_rows() or [("", "")]
    context = {"form": form, "parameter_rows": rows,
               **form_views.run_form_context(request, form), **extra}
    template = "runs/run_form.html#run-form" if request.htmx else "runs/run_form.html"
    return render(request, template, context)


def _digest(*texts: str) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


def _submit_run(request: AuthenticatedHttpRequest):
    if request.POST.get("environment"):
        _get_profile_for_user(request, request.POST["environment"])  # 404 before anything
    if request.POST.get("force") and not request.user.has_perm("runs.force_run"):
        raise PermissionDenied("You may not force a refresh.")
    form = RunForm(request.POST, user=request.user)
    if not form.is_valid():
        # 200, not 400: htmx 2 swaps only 2xx answers, and the form must come back.
        return _render_run_form(request, form)
    warnings = form.warnings()
    data = form.cleaned_data
    warned = _digest(data["include_selector"], data["exclude_selector"])
    if warnings and request.POST.get("start_anyway") != warned:
        # Nothing is sent until the analyst has seen the warnings for these very selectors.
        return _render_run_form(request, form, confirm_warnings=warnings, warned=warned)
    preview = run_form.stored_preview(data["environment"], data["include_selector"],
                                      data["exclude_selector"], data["job_id"])
    run, created = service.start_run(form.run_request(**preview), user=request.user,
                                     client_ip=client_ip(request),
                                     submit_token=data["submit_token"])
    if not created:
        messages.info(request, "This form was already submitted; here is the run it started.")
    url = run.get_absolute_url()
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def run_detail(request: AuthenticatedHttpRequest, pk: int):
    run = _get_run_for_user(request, pk)
    context = {**_live_context(request, run),
               "request_json": json.dumps(run.request_body, indent=2, sort_keys=True)}
    return render(request, "runs/run_detail.html", context)


# How long one poll of a run page counts as "someone has it open" (the page polls every
# 2 s), and how much of that may be left before a poll renews it: so a run's row is
# written at most once per WATCH_RENEW seconds, however many tabs poll it.
WATCH_SECONDS = 20
WATCH_RENEW = 10


@login_required
@require_GET
def run_status(request: AuthenticatedHttpRequest, pk: int):
    """The run page's live part, polled by htmx while the run moves; 286 stops it.

    Served from the database only, never from Coalesce. An unchanged run answers 304 to a
    conditional request after one indexed query (`live_state`). Each poll also tells the
    sweep that the page is open (`Run.watched_until`), which is what lets the sweep fetch
    a running run's node results."""
    state = live_state(request, pk)
    if state is None:
        raise Http404("No such run.")
    _keep_watched(pk, state)
    etag = f'"{state.etag}"'
    if etag in request.headers.get("If-None-Match", "") and state.active:
        return HttpResponseNotModified(headers={"ETag": etag, "Cache-Control": "no-cache"})
    run = _get_run_for_user(request, pk)
    context = _live_context(request, run)
    html = render_to_string("runs/run_detail.html#run-poll", context, request=request)
    if not context["live"]:
        return HttpResponseStopPolling(html)
    return HttpResponse(html, headers={"ETag": etag, "Cache-Control": "no-cache"})


def _keep_watched(pk: int, state: LiveState) -> None:
    now = timezone.now()
    if state.active and (state.watched_until is None
                         or state.watched_until < now + timedelta(seconds=WATCH_RENEW)):
        Run.objects.filter(pk=pk).update(watched_until=now + timedelta(seconds=WATCH_SECONDS))


def _live_context(request: AuthenticatedHttpRequest, run: Run) -> dict:
    user = request.user
    may_run = run.profile.user_may_run(user)
    nodes = failed_first(results_from_json(run.results))
    live = run.is_active
    return {
        "run": run,
        "live": live,
        "nodes": nodes,
        "progress": progress(nodes),
        "elapsed": _elapsed(run),
        "results_fetched_at": run.results_fetched_at,
        "events": run.events.all(),
        "may_cancel": (may_run and user.has_perm("runs.cancel_run")
                       and service.cancel_refusal(run) is None),
        "may_rerun": may_run and service.rerun_refusal(run) is None,
        "may_run_again": may_run,
        # Only where it can help: a finished run whose results are missing (the sweep's
        # fetch failed). While a run goes, an open page gets them with every sweep.
        "may_fetch_results": (may_run and run.run_counter is not None and not live
                              and not nodes),
        "reruns": run.reruns.order_by("pk"),
    }


def _elapsed(run: Run) -> timedelta | None:
    if run.coalesce_started_at is None:
        return None
    return (run.coalesce_ended_at or timezone.now()) - run.coalesce_started_at


@login_required
@require_POST
def refresh_results(request: AuthenticatedHttpRequest, pk: int):
    """Fetch the node results now (while a run is going, or when the sweep's fetch failed)."""
    run = _get_runnable_run_for_user(request, pk)
    problem = service.refresh_results(run)
    if problem:
        messages.error(request, problem)
    return redirect(run)


@login_required
@permission_required("runs.cancel_run", raise_exception=True)
@require_http_methods(["GET", "POST"])
def cancel_run(request: AuthenticatedHttpRequest, pk: int):
    run = _get_runnable_run_for_user(request, pk)
    refusal = service.cancel_refusal(run)
    if refusal:
        messages.error(request, refusal)
        return redirect(run)
    if request.method == "GET":
        return render(request, "runs/cancel_run.html", {"run": run})
    problem = service.cancel_run(run, user=request.user, client_ip=client_ip(request))
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, f"Coalesce is cancelling run {run.run_counter}.")
    return redirect(run)


@login_required
@require_http_methods(["GET", "POST"])
def rerun_run(request: AuthenticatedHttpRequest, pk: int):
    run = _get_runnable_run_for_user(request, pk)
    refusal = service.rerun_refusal(run)
    if refusal:
        messages.error(request, refusal)
        return redirect(run)
    if request.method == "POST" and not request.POST.get("form_action"):
        form = RerunForm(request.POST)
        if form.is_valid():
            rerun, created = service.start_rerun(
                run, parameters=form.cleaned_data["parameters"], user=request.user,
                client_ip=client_ip(request), submit_token=form.cleaned_data["submit_token"])
            if not created:
                messages.info(request, "This form was already submitted; here is its rerun.")
            return redirect(rerun)
    else:
        form = RerunForm(initial={"submit_token": _token_from(request.POST.get("submit_token"))})
    rows = _parameter_rows(request, form) if request.method == "POST" else (
        list(run.parameters.items()) or [("", "")])
    return render(request, "runs/rerun_run.html",
                  {"run": run, "form": form, "parameter_rows": rows})


# --- the audit log ---

AUDIT_PAGE_SIZE = 100


@login_required
@permission_required("runs.view_auditentry", raise_exception=True)
@require_GET
def audit_log(request: HttpRequest):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "runs/audit_log.html", {"form": form}, status=400)
    entries = form.filter(AuditEntry.objects.all())
    if form.cleaned_data.get("before"):
        entries = entries.filter(seq__lt=form.cleaned_data["before"])
    page = list(entries.order_by("-seq")[:AUDIT_PAGE_SIZE + 1])
    older = page[AUDIT_PAGE_SIZE - 1].seq if len(page) > AUDIT_PAGE_SIZE else None
    query = request.GET.copy()
    query.pop("before", None)
    context = {"form": form, "entries": audit_rows(page[:AUDIT_PAGE_SIZE], request.user),
               "older": older, "query": query.urlencode()}
    return render(request, "runs/audit_log.html", context)


@login_required
@permission_required("runs.view_auditentry", raise_exception=True)
@require_GET
def export_audit_log(request: HttpRequest):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "runs/audit_log.html", {"form": form}, status=400)
    return csv_response(audit_csv_chunks(form.filter(AuditEntry.objects.all())), "audit-log")
