from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, push_url

from runs import service
from runs.audit_log import rows_for as audit_rows
from runs.charts import charts_for
from runs.exports import audit_csv_chunks, csv_chunks, csv_response, export_batches
from runs.forms import AuditFilterForm, RerunForm, RunFilterForm, RunForm
from runs.history import PAGE_SIZE, RunHistory, moving_ids, rows_for
from runs.http import AuthenticatedHttpRequest, client_ip
from runs.models import AuditEntry, EnvironmentProfile, Run
from runs.results import failed_first, results_from_json


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
def new_run(request: HttpRequest):
    if request.method == "POST" and request.POST.get("form_action"):
        # A button that reshapes the form (defaults, add or remove a parameter row):
        # re-render from what was posted, validate nothing, send nothing.
        return _render_run_form(request, RunForm(user=request.user,
                                                 initial=_initial(request, request.POST)))
    if request.method == "POST":
        return _submit_run(request)
    return _render_run_form(request, RunForm(user=request.user,
                                             initial=_initial(request, request.GET)))


STATE_FIELDS = ("job_id", "include_selector", "exclude_selector", "parallelism", "confirm_name")


def _initial(request: HttpRequest, state) -> dict:
    """Initial values from the page's own state (POSTed by a reshaping button, or a
    ?environment= link), with the environment's defaults filled in when it was just
    chosen."""
    initial = {name: state.get(name, "") for name in STATE_FIELDS}
    initial["force"] = bool(state.get("force"))
    initial["refresh_all"] = bool(state.get("refresh_all"))
    initial["submit_token"] = _token_from(state.get("submit_token"))
    if state.get("environment"):
        profile = _get_profile_for_user(request, state["environment"])
        initial["environment"] = profile.pk
        if state.get("form_action") == "defaults" or "parallelism" not in state:
            initial["job_id"] = profile.default_job_id
            initial["parallelism"] = profile.default_parallelism
    initial["parallelism"] = initial["parallelism"] or 16
    return initial


def _token_from(value: str | None) -> uuid.UUID:
    """Keep the page's one-time token across re-renders; mint one for a fresh page."""
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return uuid.uuid4()


def _parameter_rows(request: HttpRequest, form: RunForm) -> list[tuple[str, str]]:
    if form.is_bound:
        return form.parameter_rows() or [("", "")]
    state = request.POST if request.method == "POST" else request.GET
    names, values = state.getlist("param_name"), state.getlist("param_value")
    rows = list(zip(names, values + [""] * (len(names) - len(values)), strict=False))
    action = state.get("form_action", "")
    if action.startswith("remove_param:") and action[13:].isdigit():
        index = int(action[13:])
        if index < len(rows):
            del rows[index]
    if action == "add_param":
        rows.append(("", ""))
    return rows or [("", "")]


def _render_run_form(request: HttpRequest, form: RunForm, status: int = 200):
    context = {"form": form, "parameter_rows": _parameter_rows(request, form)}
    template = "runs/run_form.html#run-form" if request.htmx else "runs/run_form.html"
    return render(request, template, context, status=status)


def _submit_run(request: AuthenticatedHttpRequest):
    if request.POST.get("environment"):
        _get_profile_for_user(request, request.POST["environment"])  # 404 before anything
    if request.POST.get("force") and not request.user.has_perm("runs.force_run"):
        raise PermissionDenied("You may not force a refresh.")
    form = RunForm(request.POST, user=request.user)
    if not form.is_valid():
        # 200, not 400: htmx 2 swaps only 2xx answers, and the form must come back.
        return _render_run_form(request, form)
    run, created = service.start_run(form.run_request(), user=request.user,
                                     client_ip=client_ip(request),
                                     submit_token=form.cleaned_data["submit_token"])
    if not created:
        messages.info(request, "This form was already submitted; here is the run it started.")
    for warning in form.warnings() if created else []:
        messages.warning(request, warning)
    url = run.get_absolute_url()
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def run_detail(request: AuthenticatedHttpRequest, pk: int):
    run = _get_run_for_user(request, pk)
    live = _live_context(request, run)
    context = {**live, "events": run.events.all(),
               "request_json": json.dumps(run.request_body, indent=2, sort_keys=True)}
    return render(request, "runs/run_detail.html", context)


@login_required
@require_GET
def run_status(request: HttpRequest, pk: int):
    """The run page's live part, polled by htmx while the run moves; 286 stops it."""
    run = _get_run_for_user(request, pk)
    context = _live_context(request, run)
    html = render_to_string("runs/run_detail.html#run-live", context, request=request)
    return HttpResponse(html) if context["live"] else HttpResponseStopPolling(html)


def _live_context(request: AuthenticatedHttpRequest, run: Run) -> dict:
    user = request.user
    may_run = run.profile.user_may_run(user)
    return {
        "run": run,
        "live": run.is_active,
        "nodes": failed_first(results_from_json(run.results)),
        "may_cancel": (may_run and user.has_perm("runs.cancel_run")
                       and service.cancel_refusal(run) is None),
        "may_rerun": may_run and service.rerun_refusal(run) is None,
        "may_fetch_results": may_run,
        "reruns": run.reruns.order_by("pk"),
    }


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
