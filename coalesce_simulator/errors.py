"""The answer for anything but success: ``SimError``, and messages more than one module sends."""

from __future__ import annotations

AUTH_ERROR = "401: Unable to authenticate, please ensure your token is valid."
TOO_MANY_REQUESTS = "429: Too many requests, please retry later."


class SimError(Exception):
    """An answer other than success: status, message for the envelope, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> SimError:
    return SimError(400, f"400: {message}")
