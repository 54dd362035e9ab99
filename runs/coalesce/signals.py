"""What the client tells the rest of the dashboard (runs.metrics counts it)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after every call with method, path (no query string) and outcome (the HTTP status,
# or the failure kind when there was no answer).
coalesce_called = Signal()
