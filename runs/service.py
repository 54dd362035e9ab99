"""The service: the only door from the pages and the admin to Coalesce.

Starting, rerunning and cancelling runs, fetching node results on request and testing a
profile's connection all happen here; views and the admin call these functions and never
open a client themselves (the import-linter contracts in pyproject.toml check it).

Starting a run, the order matters and is the point of this module:
1. the run row is committed before anything is sent (a crash leaves "submitting");
2. secrets are decrypted only while the body is built, inside this process's memory;
3. the outcome is written back on the same row, with a timeline entry for each step;
4. a started run is handed to the sweep (runs.tasks), which follows it to its end.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from runs import audit, sweep, tasks
from runs.coalesce import CoalesceError, FailureKind, StartedRun, client_for
from runs.coalesce.answers import JobInfo
from runs.coalesce.client import TOKEN_UNREADABLE
from runs.encryption import CredentialDecryptionError
from runs.models import (
    TERMINAL,
    CoalesceStatus,
    EnvironmentProfile,
    KnownJob,
    Preset,
    Run,
    RunPreview,
    RunSubscription,
)
from runs.notifications import events as notifications

logger = logging.getLogger(__name__)

SECRET_MARKER = "[secret]"
AuthType = EnvironmentProfile.AuthType


@dataclass(frozen=True)
class RunRequest:
    """What an analyst asked for, already validated by the run form."""

    profile: EnvironmentProfile
    job_id: str = ""
    include_selector: str = ""
    exclude_selector: str = ""
    parallelism: int = 16
    force: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    notify: bool = False  # "Notify me when this run ends": email the user at its outcome
    # What the form's preview matched (None: no preview, e.g. no node list or a subgraph
    # term), kept with the run so its results can be checked against it.
    preview_node_ids: tuple[str, ...] | None = None
    catalogue_refreshed_at: datetime | None = None
    preset: Preset | None = None


def build_body(req: RunRequest, *, reveal_secrets: bool) -> dict:
    """The startRun body, as docs/coalesce-api.md §3.1 describes it.

    With reveal_secrets False every secret is SECRET_MARKER and nothing is decrypted:
    that version is what the run record stores.
    """
    details: dict = {"environmentID": str(req.profile.environment_id)}
    if req.job_id:
        details["jobID"] = str(req.job_id)
    if req.include_selector:
        details["includeNodesSelector"] = req.include_selector
    if req.exclude_selector:
        details["excludeNodesSelector"] = req.exclude_selector
    details["parallelism"] = int(req.parallelism)
    if req.force:
        details["forceIgnoreWorkspaceStatus"] = True
    body: dict = {"runDetails": details,
                  "userCredentials": _credentials(req.profile, reveal_secrets)}
    if req.parameters:
        body["parameters"] = {str(k): str(v) for k, v in req.parameters.items()}
    return body


@sensitive_variables()
def _credentials(profile: EnvironmentProfile, reveal: bool) -> dict:
    def secret(name: str) -> str:
        return profile.get_secret(name) if reveal else SECRET_MARKER

    auth_type = profile.snowflake_auth_type
    if auth_type == AuthType.OAUTH:
        # The environment's own OAuth connection; Coalesce wants nothing else here.
        return {"snowflakeAuthType": "OAuth"}
    creds = {"snowflakeAuthType": str(auth_type), "snowflakeUsername": profile.snowflake_username}
    if auth_type == AuthType.BASIC:
        creds["snowflakePassword"] = secret("snowflake_password")
    else:
        # The stored canonical PEM, real newlines: json encoding escapes them as \n.
        creds["snowflakeKeyPairKey"] = secret("private_key")
        if profile.private_key_encrypted:
            creds["snowflakeKeyPairPass"] = secret("private_key_passphrase")
    if profile.snowflake_warehouse:
        creds["snowflakeWarehouse"] = profile.snowflake_warehouse
    if profile.snowflake_role:
        creds["snowflakeRole"] = profile.snowflake_role
    return creds


def start_run(req: RunRequest, *, user, client_ip: str | None,
              submit_token: uuid.UUID, via_token: str = "") -> tuple[Run, bool]:
    """Record the attempt, call Coalesce, record the outcome, hand it to the sweep.

    Returns (run, created). When `submit_token` was already used (a double click, a
    resubmitted form), nothing is sent and the existing run comes back with created False.
    Never raises for a Coalesce failure: the run row says what happened. `via_token` names
    the API token that asked for it, for the run's timeline and the audit trail.
    """
    return _attempt(Attempt(req, user=user, client_ip=client_ip, submit_token=submit_token,
                            via_token=via_token))


def start_rerun(original: Run, *, parameters: dict[str, str], user, client_ip: str | None,
                submit_token: uuid.UUID, via_token: str = "") -> tuple[Run, bool]:
    """Rerun the failed nodes of `original` (POST /scheduler/rerun) as a new run.

    The rerun body names only the original runCounter, the credentials and parameters:
    Coalesce reruns exactly the nodes that failed, with the original's selection.
    """
    req = RunRequest(profile=original.profile, job_id=original.job_id,
                     include_selector=original.include_selector,
                     exclude_selector=original.exclude_selector,
                     parallelism=original.parallelism, parameters=parameters)
    return _attempt(Attempt(req, user=user, client_ip=client_ip, submit_token=submit_token,
                            rerun_of=original, via_token=via_token))


def build_rerun_body(original: Run, req: RunRequest, *, reveal_secrets: bool) -> dict:
    body: dict = {"runDetails": {"runID": str(original.run_counter)},
                  "userCredentials": _credentials(req.profile, reveal_secrets)}
    if req.parameters:
        body["parameters"] = {str(k): str(v) for k, v in req.parameters.items()}
    return body


@dataclass(frozen=True)
class Attempt:
    """One start or rerun request, from the record to the call."""

    req: RunRequest
    user: object
    client_ip: str | None
    submit_token: uuid.UUID
    rerun_of: Run | None = None
    via_token: str = ""  # the API token's name, when the API asked

    def body(self, *, reveal_secrets: bool) -> dict:
        if self.rerun_of is None:
            return build_body(self.req, reveal_secrets=reveal_secrets)
        return build_rerun_body(self.rerun_of, self.req, reveal_secrets=reveal_secrets)

    @sensitive_variables()  # `body` holds the decrypted credentials
    def send(self, client, body: dict) -> StartedRun:
        return client.start_run(body) if self.rerun_of is None else client.rerun(body)


def _attempt(attempt: Attempt) -> tuple[Run, bool]:
    try:
        with transaction.atomic():
            run = _record_attempt(attempt, attempt.body(reveal_secrets=False))
    except IntegrityError:
        return Run.objects.get(submit_token=attempt.submit_token), False
    _send(run, attempt)
    if run.is_active:
        tasks.sweep_soon(run.profile)
    return run, True


def _record_attempt(attempt: Attempt, redacted_body: dict) -> Run:
    req, user = attempt.req, attempt.user
    run = Run.objects.create(
        submit_token=attempt.submit_token,
        profile=req.profile,
        environment_id=req.profile.environment_id,
        created_by=user,
        client_ip=attempt.client_ip,
        job_id=req.job_id,
        include_selector=req.include_selector,
        exclude_selector=req.exclude_selector,
        parallelism=req.parallelism,
        force=req.force,
        parameters=req.parameters,
        request_body=redacted_body,
        rerun_of=attempt.rerun_of,
        via_token_name=attempt.via_token,
        preset=req.preset,
    )
    if req.notify:
        RunSubscription.objects.create(run=run, user=user)
    if req.preview_node_ids is not None and attempt.rerun_of is None:
        RunPreview.objects.create(run=run, node_ids=list(req.preview_node_ids),
                                  catalogue_refreshed_at=req.catalogue_refreshed_at)
    if attempt.rerun_of is not None:
        message = f"Sending rerun of the failed nodes of run {attempt.rerun_of.pk}."
        action = audit.Action.RUN_RERUN
        attempt.rerun_of.log("rerun", f"Rerun of its failed nodes requested as run {run.pk}.",
                             actor=user.get_username())
    else:
        what = "entire environment" if run.targets_everything else "selected nodes"
        forced = ", forced despite a failed deployment" if req.force else ""
        message = f"Sending startRun for the {what}{forced}."
        action = audit.Action.RUN_FORCED if req.force else audit.Action.RUN_STARTED
    if attempt.via_token:
        message = f"{message[:-1]} via API token {attempt.via_token}."
    run.log("submitting", message, actor=user.get_username())
    details = _audit_details(run)
    if attempt.via_token:
        details["via_token"] = attempt.via_token
    if attempt.rerun_of is not None:
        details["rerun_of"] = attempt.rerun_of.pk
    audit.record(action, actor=user.get_username(), ip=attempt.client_ip,
                 target=f"run {run.pk}", details=details)
    return run


def _audit_details(run: Run) -> dict:
    return {"profile": run.profile.name, "environment_id": run.environment_id,
            "job_id": run.job_id, "force": run.force}


# sensitive_variables works on any function, not only views: it hides this frame's locals
# (the decrypted token and credentials) from Django's technical 500 page and error e-mails.
@sensitive_variables()
def _send(run: Run, attempt: Attempt) -> None:
    try:
        _refuse_expired_pat(attempt.req.profile)
        with client_for(attempt.req.profile) as client:
            try:
                body = attempt.body(reveal_secrets=True)
            except CredentialDecryptionError as exc:
                logger.error("Run %s not sent: %s", run.pk, exc)
                raise CoalesceError(FailureKind.NOT_SENT, CREDENTIALS_UNREADABLE) from None
            started = attempt.send(client, body)
            link = client.run_link(started.run_counter)
    except CoalesceError as exc:
        _record_failure(run, exc)
    else:
        _finish(run, Run.Status.STARTED, run_counter=started.run_counter, run_link=link)


def _refuse_expired_pat(profile: EnvironmentProfile) -> None:
    """Snowflake would refuse an expired token: say so plainly, and send nothing."""
    if profile.pat_expired:
        raise CoalesceError(
            FailureKind.NOT_SENT,
            f"Not sent: the Snowflake programmatic access token of “{profile.name}” expired on "
            f"{profile.snowflake_pat_expires_on:%Y-%m-%d}. An admin must store a new token on "
            "the profile (and its new expiry date).")


CREDENTIALS_UNREADABLE = ("The stored Snowflake credentials cannot be decrypted with the "
                          "configured keys, so nothing was sent. An admin must re-enter them "
                          "on the profile.")


def _record_failure(run: Run, exc: CoalesceError) -> None:
    unreadable = (CREDENTIALS_UNREADABLE, TOKEN_UNREADABLE)
    if exc.may_have_started:
        status = Run.Status.UNKNOWN
    elif exc.kind == FailureKind.NOT_SENT:
        status = Run.Status.NOT_SENT
    elif exc.kind in (FailureKind.CONNECT_FAILED, FailureKind.UNAVAILABLE):
        status = Run.Status.UNREACHABLE
    elif exc.kind == FailureKind.RATE_LIMITED:
        status = Run.Status.RATE_LIMITED
    else:
        status = Run.Status.REJECTED
    if status == Run.Status.REJECTED:
        audit.record(audit.Action.RUN_REJECTED, actor=run.created_by.get_username(),
                     ip=run.client_ip, target=f"run {run.pk}",
                     details={**_audit_details(run), "http_status": exc.status_code,
                              "error": exc.error_string or str(exc.kind)})
    error_kind = str(exc.kind)
    if status == Run.Status.NOT_SENT:
        # Not sent for a reason of ours: undecryptable credentials, or (else) an expired
        # PAT or a base URL no longer allowed, whose message says which.
        error_kind = "decryption" if exc.message in unreadable else "refused"
    _finish(run, status, http_status=exc.status_code, error_kind=error_kind,
            error_message=exc.message, error_string=exc.error_string,
            error_detail=exc.error_detail, raw_response=exc.raw_body)


def _finish(run: Run, status: str, **fields) -> None:
    previous = run.outcome
    run.status = status
    run.answered_at = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value if value is not None else getattr(run, name))
    # update_fields: the row was committed before the call; write only the outcome.
    run.save(update_fields=["status", "answered_at", *fields])
    if status == Run.Status.STARTED:
        run.log("started", f"Coalesce accepted the run: runCounter {run.run_counter}.")
    else:
        run.log(status, run.error_message)
    notifications.outcome_changed(run, previous)
    logger.info("Run %s on %s: %s", run.pk, run.environment_id, status)


# --- node results and the connection test ---

def refresh_results(run: Run) -> str | None:
    """Fetch the node results now (one call). Returns None, or the problem in plain words."""
    if run.run_counter is None:
        return "This run has no runCounter, so Coalesce has no results for it."
    try:
        with client_for(run.profile) as client:
            problem = sweep.fetch_results(client, run)
    except CoalesceError as exc:
        problem = exc.message
    return problem


def check_job(profile: EnvironmentProfile, job_id: str) -> tuple[JobInfo | None, str]:
    """Ask Coalesce about a job: (the job, "") or (None, what to tell the analyst).
    Never stops a run from starting: the form only shows the answer.

    What it learns is kept (KnownJob), so the form's preview can show what a run of the job
    refreshes without asking Coalesce again; a 404 forgets the job, any other failure
    keeps what was known."""
    try:
        with client_for(profile, read_timeout=JOB_CHECK_TIMEOUT) as client:
            job = client.get_job(profile.environment_id, job_id)
    except CoalesceError as exc:
        if exc.status_code == 404:
            KnownJob.objects.filter(profile=profile, job_id=job_id).delete()
            return None, f"No job {job_id} in this environment."
        logger.info("Job %s of %s not checked: %s", job_id, profile, exc.message)
        return None, "Couldn't check the job. You can still start the run."
    _remember_job(profile, job_id, job)
    return job, ""


def _remember_job(profile: EnvironmentProfile, job_id: str, job: JobInfo) -> None:
    values = {"name": job.name, "include_selector": job.include_selector,
              "exclude_selector": job.exclude_selector, "checked_at": timezone.now()}
    try:
        with transaction.atomic():
            KnownJob.objects.update_or_create(profile=profile, job_id=job_id, defaults=values)
    except IntegrityError:  # two checks of the same job at once: the other one stored it
        pass


# A job check is a hint while typing: don't hold the page for Coalesce's full read timeout.
JOB_CHECK_TIMEOUT = 5


@dataclass(frozen=True)
class ConnectionReport:
    """What "Test connection" found: `problem` (None when every check passed), what was
    checked and passed, and what a test cannot check at all."""

    problem: str | None
    checked: tuple[str, ...] = ()
    not_checked: str = ("Not checked: the Snowflake credentials, and whether Coalesce will "
                        "accept a run; only a real run shows those.")

    def summary(self) -> str:
        passed = f"Checked: {'; '.join(self.checked)}. " if self.checked else ""
        if self.problem:
            return f"{passed}Problem: {self.problem} {self.not_checked}"
        return f"Connected. {passed}{self.not_checked}"


def test_connection(profile: EnvironmentProfile) -> ConnectionReport:
    """Check the profile's base URL and API token (the cheapest authenticated call, a
    one-run listing), then its environment (GET /api/v1/environments/{id}): a token that
    works but cannot see the environment, or an environment that answers 500, fails."""
    checked: list[str] = []
    try:
        with client_for(profile) as client:
            client.test_connection()
            checked.append("the base URL and API token (Coalesce listed runs)")
            try:
                environment = client.get_environment(profile.environment_id)
            except CoalesceError as exc:
                return ConnectionReport(
                    f"environment {profile.environment_id}: {exc.message}", tuple(checked))
            name = environment.get("name")
            named = f" ({name})" if isinstance(name, str) and name else ""
            checked.append(f"environment {profile.environment_id}{named} exists and this "
                           "token may read it")
    except CoalesceError as exc:
        return ConnectionReport(exc.message, tuple(checked))
    return ConnectionReport(None, tuple(checked))


# --- cancelling ---

# A cancel whose outcome was never written (the process died mid-call) stops blocking a
# new attempt after this long.
CANCEL_PENDING_FOR = timedelta(minutes=2)


def cancel_refusal(run: Run) -> str | None:
    """Why this run cannot be cancelled now, in plain words (None when it can)."""
    if run.status != Run.Status.STARTED or run.run_counter is None:
        return "Only a run that Coalesce accepted can be cancelled."
    if run.coalesce_status in TERMINAL:
        label = CoalesceStatus(run.coalesce_status).label.lower()
        return f"This run is already {label}; there is nothing left to cancel."
    if not run.profile.organization_id:
        return ("Cancelling needs the profile's Coalesce organisation ID. Ask an admin to add "
                "it to the profile.")
    last = run.events.filter(kind__in=CANCEL_EVENTS).order_by("-at", "-id").first()
    if last is not None and last.kind == "cancel_accepted":
        return "Coalesce already accepted a cancellation of this run."
    if (last is not None and last.kind == "cancel_requested"
            and timezone.now() - last.at < CANCEL_PENDING_FOR):
        return "Cancelling this run was already requested."
    return None


CANCEL_EVENTS = ("cancel_requested", "cancel_accepted", "cancel_failed")


def rerun_refusal(run: Run) -> str | None:
    if run.coalesce_status != CoalesceStatus.FAILED or run.run_counter is None:
        shown = run.coalesce_status or run.get_status_display().lower()
        return f"Only a failed run can be rerun from its point of failure; this one is {shown}."
    return None


def cancel_run(run: Run, *, user, client_ip: str | None) -> str | None:
    """Ask Coalesce to cancel `run`. Returns None on success, else the reason in plain words.

    The refusal check and the "requested" entry happen under a row lock, so two clicks
    send one cancellation. The request and its outcome are audited separately, and a
    cancel that failed may be tried again.
    """
    actor = user.get_username()
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("profile").get(pk=run.pk)
        refusal = cancel_refusal(run)
        if refusal:
            return refusal
        run.log("cancel_requested", f"Cancel requested by {actor}.", actor=actor)
        audit.record(audit.Action.RUN_CANCEL_REQUESTED, actor=actor, ip=client_ip,
                     target=f"run {run.pk}", details=_audit_details(run))
    profile = run.profile
    try:
        with client_for(profile) as client:
            # The run's own environment ID, as sent at start: the profile may have changed.
            client.cancel_run(run_counter=run.run_counter, org_id=profile.organization_id,
                              environment_id=run.environment_id)
    except CoalesceError as exc:
        run.log("cancel_failed", f"Coalesce did not cancel the run: {exc.message}")
        audit.record(audit.Action.RUN_CANCEL_FAILED, actor=actor, ip=client_ip,
                     target=f"run {run.pk}", details={**_audit_details(run),
                                                      "error": str(exc.kind)})
        return exc.message
    run.log("cancel_accepted", "Coalesce accepted the cancellation; the status follows.")
    audit.record(audit.Action.RUN_CANCELLED, actor=actor, ip=client_ip,
                 target=f"run {run.pk}", details=_audit_details(run))
    return None
