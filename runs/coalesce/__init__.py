"""The Coalesce API client: the one way out to Coalesce (docs/coalesce-api.md).

`client` holds the client and its errors; `answers` the dataclasses its calls return.
Import from here: `from runs.coalesce import CoalesceClient, CoalesceError, client_for`.
"""

from runs.coalesce.answers import RunPage, RunSummary, StartedRun
from runs.coalesce.client import (
    MAX_RESPONSE_BYTES,
    RESULTS_MAX_BYTES,
    TOKEN_UNREADABLE,
    USER_AGENT,
    CoalesceClient,
    CoalesceError,
    FailureKind,
)
from runs.coalesce.opening import client_for

__all__ = [
    "MAX_RESPONSE_BYTES", "RESULTS_MAX_BYTES", "TOKEN_UNREADABLE", "USER_AGENT",
    "CoalesceClient", "CoalesceError",
    "FailureKind", "RunPage", "RunSummary", "StartedRun", "client_for",
]
