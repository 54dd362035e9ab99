"""Errors that never reach the API's own handlers (an unknown path, a wrong method) are
JSON too, like every other API answer."""

from __future__ import annotations

from django.http import JsonResponse

MESSAGES = {
    404: ("not_found", "There is nothing at this address. The API's operations are listed "
                       "at /api/v1/openapi.json."),
    405: ("method_not_allowed", "This address does not take this method."),
}


def json_errors(get_response):
    def middleware(request):
        response = get_response(request)
        if (request.path_info.startswith("/api/") and response.status_code in MESSAGES
                and not response.get("Content-Type", "").startswith("application/json")):
            code, message = MESSAGES[response.status_code]
            replaced = JsonResponse({"code": code, "message": message},
                                    status=response.status_code)
            if response.has_header("Allow"):
                replaced["Allow"] = response["Allow"]
            return replaced
        return response

    return middleware
