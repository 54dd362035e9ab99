"""The NinjaAPI instance: token auth on every operation, and every error as JSON
{"code", "message"} (Error in runs.api.schemas)."""

from __future__ import annotations

import logging

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from runs.api.auth import UNAUTHENTICATED, ApiError, TokenAuth
from runs.api.endpoints import router

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Coalesce refresh dashboard API",
    version="1",
    description=("Start, rerun, cancel and follow Coalesce refresh runs with the dashboard's "
                 "own rules. Authenticate with a personal access token from the API tokens "
                 "page, sent as “Authorization: Bearer crd_…”. Every error is JSON with a "
                 "stable code and a plain message."),
    urls_namespace="api",
    docs_url=None,  # our own page (runs.api.pages.api_docs): no CDN, no inline script
    openapi_url="/openapi.json",
    auth=TokenAuth(),
)
api.add_router("", router)


def _error(request, status: int, code: str, message: str, errors=None, headers=None):
    body = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return _error(request, exc.status, exc.code, exc.message, exc.errors, exc.headers)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(request, 401, "unauthenticated", UNAUTHENTICATED,
                  headers={"WWW-Authenticate": 'Bearer realm="api"'})


@api.exception_handler(ValidationError)
def _invalid_request(request, exc: ValidationError):
    errors: dict[str, list[str]] = {}
    for item in exc.errors:
        # loc is ("body", "payload", "field") or ("query", "field"): keep the field path.
        where = ".".join(str(p) for p in item.get("loc", ())[1:] if p != "payload") or "__all__"
        errors.setdefault(where, []).append(str(item.get("msg", "invalid")))
    message = " ".join(f"{where}: {'; '.join(texts)}" for where, texts in errors.items())
    return _error(request, 422, "invalid", message, errors)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    code = {400: "bad_request", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return _error(request, exc.status_code, code, str(exc))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, "not_found", "There is nothing at this address.")


@api.exception_handler(Exception)
def _server_error(request, exc):
    logger.exception("API error on %s %s", request.method, request.path)
    return _error(request, 500, "server_error", "Something went wrong on our side; it is "
                  "logged. Try again later.")
