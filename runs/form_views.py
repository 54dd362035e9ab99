"""The run form's helpers and its small htmx endpoints: node search, the selector preview,
the job check and the node list's status. The form itself is runs.views.new_run; every
endpoint here also works as a plain page or a reshaping POST of the form without
JavaScript (see templates/runs/run_form.html)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from runs import catalogue, run_form, selectors, service
from runs.forms import PresetForm, RunForm
from runs.http import AuthenticatedHttpRequest
from runs.models import EnvironmentProfile, Preset

FRAGMENTS = "runs/run_form.html#"


def _profile(request: AuthenticatedHttpRequest, value) -> EnvironmentProfile | None:
    """The chosen profile if this user may run it, else None (a fragment then says so)."""
    try:
        return EnvironmentProfile.objects.runnable_by(request.user).get(pk=int(value))
    except (TypeError, ValueError, EnvironmentProfile.DoesNotExist):
        return None


def _chosen(request: AuthenticatedHttpRequest, form: RunForm) -> EnvironmentProfile | None:
    value = form.data.get("environment") if form.is_bound else form.initial.get("environment")
    return _profile(request, value) if value else None


def _value(form: RunForm, name: str) -> str:
    value = form.data.get(name) if form.is_bound else form.initial.get(name)
    return str(value or "")


def run_form_context(request: AuthenticatedHttpRequest, form: RunForm) -> dict:
    """What the form shows besides its fields, for the chosen environment."""
    profile = _chosen(request, form)
    if profile is not None:
        catalogue.request_refresh(profile)  # only when missing or older than the setting
        _preview_as_you_type(form)
    query = request.POST.get("node_q", "") if request.method == "POST" else ""
    return {
        "profile": profile,
        "catalogue_status": catalogue.status_of(profile) if profile else None,
        "selector_preview": run_form.preview_for(
            profile, _value(form, "include_selector"), _value(form, "exclude_selector"),
            _value(form, "job_id")),
        "node_q": query,
        "node_results": run_form.search_nodes(profile, query) if query else None,
        "presets": run_form.presets_for(request.user, profile),
        "preset_form": PresetForm(),
        "job_suggestions": run_form.job_suggestions(profile),
        "may_force": request.user.has_perm("runs.force_run"),
    }


def _preview_as_you_type(form: RunForm) -> None:
    """The selector boxes (and the job ID) refresh the preview while the analyst types."""
    attrs = {"hx-get": reverse("runs:selector_preview"), "hx-target": "#selector-preview",
             "hx-swap": "outerHTML", "hx-trigger": "input changed delay:300ms",
             "hx-include": "#id_environment, #id_job_id, #id_include_selector, "
                           "#id_exclude_selector"}
    for name in ("include_selector", "exclude_selector"):
        form.fields[name].widget.attrs.update(attrs)


def pick_node(profile: EnvironmentProfile, action: str, initial: dict) -> str:
    """Add the picked node's term to Include or Exclude nodes (`action` is
    "include:<node id>" or "exclude:<node id>"). Returns a line for the page."""
    where, _, node_id = action.partition(":")
    node = run_form.node_by_id(profile, node_id)
    if node is None:
        return "That node is no longer in the node list; refresh the list and search again."
    field = f"{where}_selector"
    term = selectors.term_for(node)
    try:
        initial[field] = selectors.add_term(initial[field], term)
    except selectors.SelectorError:
        # The selector typed so far doesn't parse: append, and let the preview point at it.
        initial[field] = f"{initial[field].rstrip()} OR {term}".removeprefix(" OR ")
    label = "Include nodes" if where == "include" else "Exclude nodes"
    return f"Added {node.name} ({node.location}) to {label}."


def save_preset(request: AuthenticatedHttpRequest, profile: EnvironmentProfile,
                initial: dict, rows: list[tuple[str, str]]) -> dict:
    """Save the form as the user's preset of that name on `profile` (replacing theirs of
    the same name). The force option is never part of it."""
    form = PresetForm(request.POST)
    if not form.is_valid():
        return {"preset_form": form}
    try:
        parallelism = max(1, min(int(initial["parallelism"]), 1024))
    except (TypeError, ValueError):
        parallelism = profile.default_parallelism
    values = {"job_id": str(initial["job_id"]).strip(),
              "include_selector": initial["include_selector"].strip(),
              "exclude_selector": initial["exclude_selector"].strip(),
              "parallelism": parallelism, "shared": form.cleaned_data["preset_shared"],
              "parameters": {n.strip(): v for n, v in rows if n.strip()}}
    try:
        with transaction.atomic():
            preset, _ = Preset.objects.update_or_create(
                profile=profile, owner=request.user, name=form.cleaned_data["preset_name"],
                defaults=values)
    except IntegrityError:  # a double click raced the first save
        return {"notice": "The preset was saved twice at once; it is saved."}
    initial["preset"] = preset.pk
    who = "everyone who may run this environment" if preset.shared else "only you"
    return {"notice": f"Saved the preset “{preset.name}” ({who} can use it)."}


@login_required
@require_GET
def node_search(request: AuthenticatedHttpRequest):
    """The picker's matches as you type (htmx); without JavaScript the form's Search
    button re-renders the whole form with them."""
    profile = _profile(request, request.GET.get("environment"))
    query = request.GET.get("node_q", "")
    context = {"profile": profile, "node_q": query,
               "node_results": run_form.search_nodes(profile, query)}
    return render(request, FRAGMENTS + "node-results", context)


@login_required
@require_GET
def selector_preview(request: AuthenticatedHttpRequest):
    """"Matches N nodes" for the selectors as typed (htmx)."""
    profile = _profile(request, request.GET.get("environment"))
    found = run_form.preview_for(profile, request.GET.get("include_selector", ""),
                                 request.GET.get("exclude_selector", ""),
                                 request.GET.get("job_id", ""))
    return render(request, FRAGMENTS + "selector-preview", {"selector_preview": found})


@login_required
@require_GET
def job_check(request: AuthenticatedHttpRequest):
    """What Coalesce says about the typed job ID (htmx), and the preview, out of band: the
    check stores the job's selectors, which the preview of a job's run reads. Never
    blocks the run."""
    profile = _profile(request, request.GET.get("environment"))
    job_id = request.GET.get("job_id", "").strip()
    job, problem, count = None, "", None
    if profile is not None and job_id.isdigit():
        job, problem = service.check_job(profile, job_id)
    if job is not None and (job.include_selector or job.exclude_selector):
        # Where the node list can tell: what the job's own selectors match.
        found = run_form.preview_for(profile, job.include_selector, job.exclude_selector)
        count = found.preview.count if found.preview is not None else None
    preview = run_form.preview_for(profile, request.GET.get("include_selector", ""),
                                   request.GET.get("exclude_selector", ""), job_id)
    return render(request, FRAGMENTS + "job-check-answer",
                  {"job": job, "job_problem": problem, "job_node_count": count,
                   "selector_preview": preview})


@login_required
@require_POST
def refresh_catalogue(request: AuthenticatedHttpRequest):
    """The Refresh link beside "Node list refreshed 12 min ago": queue a refresh now."""
    profile = _profile(request, request.POST.get("environment"))
    if profile is None:
        raise Http404("No such environment.")
    catalogue.request_refresh(profile, force=True)
    if not request.htmx:
        return redirect(f"{reverse('runs:new')}?environment={profile.pk}")
    return catalogue_status(request, profile)


@login_required
@require_GET
def catalogue_status_view(request: HttpRequest):
    profile = _profile(request, request.GET.get("environment"))
    if profile is None:
        raise Http404("No such environment.")
    return catalogue_status(request, profile)


def catalogue_status(request, profile: EnvironmentProfile):
    context = {"profile": profile, "catalogue_status": catalogue.status_of(profile)}
    return render(request, FRAGMENTS + "catalogue-status", context)
