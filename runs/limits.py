"""Size caps for what a run sends, checked by the run and rerun forms (runs.forms)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

# Size caps for what a run sends. Coalesce lists each run's selectors back to the sweep
# (runs.sweep asks for DETAIL_PAGE detailed runs per call, under the client's 1 MiB cap),
# and the history shows them: a few megabyte-sized selectors stopped following for a whole
# environment and made every history page megabytes heavy.
MAX_SELECTOR_CHARS = 4000
MAX_PARAMETERS = 50
MAX_PARAMETER_NAME_CHARS = 100
MAX_PARAMETER_VALUE_CHARS = 1000


def parameter_problem(name: str, value: str) -> str | None:
    if "\x00" in name or "\x00" in value:
        # The database cannot store it (PostgreSQL text refuses NUL): a 500 otherwise.
        return "Remove the null character (\\x00); it cannot be sent."
    if len(name) > MAX_PARAMETER_NAME_CHARS:
        return (f"A parameter name may have at most {MAX_PARAMETER_NAME_CHARS} characters "
                f"(this one has {len(name)}).")
    if len(value) > MAX_PARAMETER_VALUE_CHARS:
        return (f"A parameter value may have at most {MAX_PARAMETER_VALUE_CHARS:,} characters "
                f"(this one has {len(value):,}).")
    return None


def clean_selector(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_SELECTOR_CHARS:
        raise ValidationError(
            f"A selector may have at most {MAX_SELECTOR_CHARS:,} characters (this one has "
            f"{len(value):,}). Select a job instead, or split the refresh into several runs.")
    return value
