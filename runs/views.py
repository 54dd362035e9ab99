from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from runs.forms import RunForm
from runs.models import EnvironmentProfile, Run
from runs.service import RunRequest, start_run

HISTORY_PAGE_SIZE = 50


def _get_profile_for_user(request: HttpRequest, pk) -> EnvironmentProfile:
    """The profile if this user may run it; 404 otherwise (even when it exists)."""
    try:
        return EnvironmentProfile.runnable_by(request.user).get(pk=int(pk))
    except (ValueError, TypeError, EnvironmentProfile.DoesNotExist):
        raise Http404("No such environment.") from None


def _visible_runs(user):
    """Runs this user may see: auditors (view_run) and superusers all, analysts by profile."""
    runs = Run.objects.select_related("profile", "created_by")
    if user.has_perm("runs.view_run"):
        return runs
    return runs.filter(profile__in=EnvironmentProfile.runnable_by(user))


def _get_run_for_user(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(_visible_runs(request.user), pk=pk)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, trusting only TRUSTED_PROXY_COUNT proxies' X-Forwarded-For."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= proxies and forwarded[-proxies]:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


@login_required
@require_GET
def run_list(request: HttpRequest):
    runs = _visible_runs(request.user)[:HISTORY_PAGE_SIZE]
    return render(request, "runs/run_list.html", {"runs": runs})


@login_required
@require_http_methods(["GET", "POST"])
def new_run(request: HttpRequest):
    if request.method == "POST":
        return _submit_run(request)
    return _render_run_form(request, RunForm(user=request.user, initial=_initial(request)))


def _initial(request: HttpRequest) -> dict:
    """Initial values for a GET: what the page sent back (an environment change, a row
    added or removed) plus the chosen environment's defaults when asked for."""
    query = request.GET
    initial = {name: query.get(name, "") for name in (
        "job_id", "include_selector", "exclude_selector", "parallelism", "confirm_name")}
    initial["force"] = bool(query.get("force"))
    initial["refresh_all"] = bool(query.get("refresh_all"))
    initial["submit_token"] = _token_from(query.get("submit_token"))
    if query.get("environment"):
        profile = _get_profile_for_user(request, query["environment"])
        initial["environment"] = profile.pk
        if query.get("defaults") or not query.get("parallelism"):
            initial["job_id"] = profile.default_job_id
            initial["parallelism"] = profile.default_parallelism
    if not initial["parallelism"]:
        initial["parallelism"] = 16
    return initial


def _token_from(value: str | None) -> uuid.UUID:
    """Keep the page's one-time token across re-renders; mint one for a fresh page."""
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return uuid.uuid4()


def _parameter_rows(request: HttpRequest, form: RunForm) -> list[tuple[str, str]]:
    if form.is_bound:
        rows = form.parameter_rows()
    else:
        names, values = request.GET.getlist("param_name"), request.GET.getlist("param_value")
        rows = list(zip(names, values + [""] * (len(names) - len(values)), strict=False))
        removed = request.GET.get("remove_param")
        if removed and removed.isdigit() and int(removed) < len(rows):
            del rows[int(removed)]
        if request.GET.get("add_param"):
            rows.append(("", ""))
    return rows or [("", "")]


def _render_run_form(request: HttpRequest, form: RunForm, status: int = 200):
    context = {"form": form, "parameter_rows": _parameter_rows(request, form)}
    template = "runs/run_form.html#run-form" if request.htmx else "runs/run_form.html"
    return render(request, template, context, status=status)


def _submit_run(request: HttpRequest):
    if request.POST.get("environment"):
        _get_profile_for_user(request, request.POST["environment"])  # 404 before anything
    if request.POST.get("force") and not request.user.has_perm("runs.force_run"):
        raise PermissionDenied("You may not force a refresh.")
    form = RunForm(request.POST, user=request.user)
    if not form.is_valid():
        # 200, not 400: htmx 2 swaps only 2xx answers, and the form must come back.
        return _render_run_form(request, form)
    data = form.cleaned_data
    run, created = start_run(
        RunRequest(
            profile=data["environment"],
            job_id=data["job_id"],
            include_selector=data["include_selector"],
            exclude_selector=data["exclude_selector"],
            parallelism=data["parallelism"],
            force=data.get("force", False),
            parameters=data["parameters"],
        ),
        user=request.user,
        client_ip=client_ip(request),
        submit_token=data["submit_token"],
    )
    if not created:
        messages.info(request, "This form was already submitted; here is the run it started.")
    else:
        for warning in form.warnings():
            messages.warning(request, warning)
    url = run.get_absolute_url()
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int):
    run = _get_run_for_user(request, pk)
    context = {"run": run, "events": run.events.all(),
               "request_json": json.dumps(run.request_body, indent=2, sort_keys=True)}
    return render(request, "runs/run_detail.html", context)
