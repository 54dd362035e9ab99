"""The person's own pages: "API tokens" (make, list, revoke), "My settings", and the
API's docs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from runs import tokens
from runs.api.forms import ApiTokenForm, PreferenceForm
from runs.http import AuthenticatedHttpRequest, client_ip
from runs.models import ApiToken, NotificationPreference


class ShownOnce(str):
    """The new token for the template, with a repr that hides it: Django's template
    engine logs the whole context (at DEBUG) when a variable is missing."""

    def __repr__(self) -> str:
        return "'crd_[shown once]'"


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: AuthenticatedHttpRequest):
    user = request.user
    new_token = ""
    if request.method == "POST":
        form = ApiTokenForm(request.POST, user=user)
        if form.is_valid():
            _, secret = tokens.create_token(
                user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(), ip=client_ip(request))
            new_token = ShownOnce(secret)
            # Rendered, not redirected: the token is in this answer only, never stored.
            form = ApiTokenForm(user=user)
    else:
        form = ApiTokenForm(user=user)
    context = {"form": form, "new_token": new_token,
               "tokens": ApiToken.objects.filter(user=user)}
    response = render(request, "runs/api_tokens.html", context)
    response["Cache-Control"] = "no-store"  # the page may hold a token
    return response


@login_required
@require_POST
def revoke_token(request: AuthenticatedHttpRequest, pk: int):
    token = ApiToken.objects.select_related("user").filter(pk=pk).first()
    if token is None or not tokens.may_revoke(request.user, token):
        raise Http404("No such token.")
    if tokens.revoke(token, by=request.user, ip=client_ip(request)):
        messages.success(request, f"The token “{token.name}” is revoked; it no longer works.")
    return redirect("api_tokens")


@login_required
@require_http_methods(["GET", "POST"])
def my_settings(request: AuthenticatedHttpRequest):
    """My settings: whether "Notify me when this run ends" starts ticked."""
    preference, _ = NotificationPreference.objects.get_or_create(user=request.user)
    form = PreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("my_settings")
    return render(request, "runs/my_settings.html", {"form": form})


@login_required
@require_GET
def api_docs(request):
    """The OpenAPI description as a plain page: no script, so it works under any CSP."""
    from runs.api.api import api

    schema = api.get_openapi_schema()
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            body = (operation.get("requestBody", {}).get("content", {})
                    .get("application/json", {}).get("schema"))
            operations.append({
                "method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": operation.get("parameters", []),
                "body": _resolve(schema, body) if body else None,
                "responses": sorted(operation.get("responses", {}).items()),
            })
    return render(request, "runs/api_docs.html",
                  {"info": schema["info"], "operations": operations})


def _resolve(schema: dict, ref: dict) -> dict:
    name = ref.get("$ref", "").rsplit("/", 1)[-1]
    found = schema.get("components", {}).get("schemas", {}).get(name, ref)
    return {"name": name, "properties": found.get("properties", {}),
            "required": found.get("required", [])}
