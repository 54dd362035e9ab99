"""What the API reads and writes: pydantic schemas, which also make the OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime

from ninja import Field, Schema

MAX_ID = 2**63 - 1


class Error(Schema):
    """Every error: a stable code for programs and a plain message for people."""

    code: str = Field(description="Stable, machine-readable, e.g. not_found, invalid, "
                      "forbidden, throttled.")
    message: str
    errors: dict[str, list[str]] | None = Field(
        None, description="For code=invalid: the problems by field (\"__all__\" for the "
        "request as a whole).")


class StartRunIn(Schema):
    environment: int = Field(ge=1, le=MAX_ID, description="The environment's id "
                             "(GET /api/v1/environments lists those you may run).")
    job_id: str = Field("", max_length=64)
    include_selector: str = Field("", max_length=10_000)
    exclude_selector: str = Field("", max_length=10_000)
    parallelism: int | None = Field(None, description="Default: the environment's.")
    force: bool = Field(False, description="Needs the force permission and confirm_name.")
    confirm_name: str = Field("", max_length=200, description="The environment's name, "
                              "exactly, to confirm a forced run.")
    refresh_all: bool = Field(False, description="Confirms a run with no job and no "
                              "selector, which refreshes the entire environment.")
    parameters: dict[str, str] = Field(default_factory=dict)
    notify: bool = Field(False, description="Email the token's owner when the run ends.")
    start_anyway: bool = Field(False, description="Start despite the selector warnings a "
                               "first attempt answered with (code selector_warnings).")

    model_config = {"json_schema_extra": {"examples": [
        {"environment": 1, "job_id": "3", "parameters": {"REGION": "emea"}}]}}


class RerunIn(Schema):
    parameters: dict[str, str] | None = Field(
        None, description="Default: the original run's parameters.")


class EnvironmentOut(Schema):
    id: int
    name: str
    environment_id: str
    default_job_id: str
    default_parallelism: int


class RunOut(Schema):
    id: int
    url: str = Field(description="The run's page in the dashboard.")
    environment: str
    environment_id: str
    started_by: str
    via_token: str = Field(description="The API token that started it, or \"\".")
    created_at: datetime
    job_id: str
    include_selector: str
    exclude_selector: str
    parallelism: int
    force: bool
    run_counter: int | None
    start_state: str = Field(description="What Coalesce answered to the start.")
    coalesce_status: str
    outcome: str = Field(description="queued, running, succeeded, failed, cancelled, "
                         "could_not_start, unknown or unfollowed.")
    outcome_label: str
    finished: bool = Field(description="False while the dashboard still follows the run.")
    coalesce_started_at: datetime | None
    coalesce_ended_at: datetime | None
    error_message: str
    rerun_of: int | None


class NodeOut(Schema):
    name: str
    status: str
    error: str
    duration_seconds: float | None
    rows_inserted: int | None
    rows_updated: int | None
    rows_deleted: int | None


class EventOut(Schema):
    at: datetime
    kind: str
    message: str
    actor: str


class RunDetailOut(RunOut):
    parameters: dict[str, str]
    nodes: list[NodeOut]
    timeline: list[EventOut]


class RunPage(Schema):
    runs: list[RunOut]
    older_cursor: str | None = Field(description="Pass as ?cursor= for the next, older page.")
    newer_cursor: str | None


class RunFilters(Schema):
    """The history's filters (the same names as the page's query string)."""

    environment: int | None = Field(None, ge=1, le=MAX_ID)
    user: int | None = Field(None, ge=1, le=MAX_ID, description="Started by (a user id).")
    outcome: str | None = Field(None, max_length=32, description=(
        "One outcome: queued, running, succeeded, failed, cancelled, could_not_start, "
        "unknown or unfollowed."))
    date_from: date | None = None
    date_to: date | None = None
    force: bool = False
    q: str | None = Field(None, max_length=200)
    cursor: str | None = Field(None, max_length=200)
