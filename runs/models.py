from __future__ import annotations

import uuid
from datetime import date

from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models.expressions import RawSQL
from django.db.models.sql import Query
from django.urls import reverse
from django.utils import timezone

from runs import encryption

MAX_PARALLELISM = 1024


class EnvironmentProfileQuerySet(models.QuerySet):
    """Who may use which profile: the one home of that rule (views, forms and the history
    all ask here, as Django admin asks `get_queryset`)."""

    def runnable_by(self, user) -> EnvironmentProfileQuerySet:
        """The profiles `user` may start runs on: all for superusers, else by group."""
        if user.is_superuser:
            return self.all()
        return self.filter(allowed_groups__in=user.groups.all()).distinct()

    def visible_to(self, user) -> EnvironmentProfileQuerySet:
        """The profiles whose runs `user` may see: all for auditors (view_run) and
        superusers, else the ones they may run."""
        if user.has_perm("runs.view_run"):
            return self.all()
        return self.runnable_by(user)


# From this many days before a PAT's expiry date, the pages warn about it.
PAT_WARNING_DAYS = 14


class EnvironmentProfile(models.Model):
    """A Coalesce environment and the Snowflake credentials its refreshes run with.

    Secrets live only in the `*_ct` columns, as ciphertext bound to this row's immutable
    `uuid` and the secret's name (runs.encryption). Nothing here ever returns a secret
    except `get_secret`, which the run service calls while it builds a request.
    """

    class AuthType(models.TextChoices):
        BASIC = "Basic", "Basic (username and password)"
        KEYPAIR = "KeyPair", "KeyPair (private key)"
        OAUTH = "OAuth", "OAuth (the environment's own connection)"

    SECRETS = ("api_token", "snowflake_password", "private_key", "private_key_passphrase")
    # The secrets each auth type keeps; the others are dropped when the type changes.
    SECRETS_BY_AUTH_TYPE = {
        AuthType.BASIC: {"api_token", "snowflake_password"},
        AuthType.KEYPAIR: {"api_token", "private_key", "private_key_passphrase"},
        AuthType.OAUTH: {"api_token"},
    }

    uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    name = models.CharField("Name", max_length=100, unique=True)
    base_url = models.CharField("Coalesce base URL", max_length=255)
    environment_id = models.CharField("Environment ID", max_length=64)
    default_job_id = models.CharField("Default job ID", max_length=64, blank=True)
    default_parallelism = models.PositiveIntegerField(
        "Default parallelism",
        default=16,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLELISM)],
    )
    organization_id = models.CharField(
        "Coalesce organisation ID", max_length=64, blank=True,
        help_text="Needed to cancel runs from the dashboard.",
    )
    allowed_groups = models.ManyToManyField(
        Group,
        blank=True,
        verbose_name="Allowed groups",
        help_text="Analysts in any of these groups may start runs on this profile.",
    )

    snowflake_auth_type = models.CharField(
        "Snowflake auth type", max_length=16, choices=AuthType, default=AuthType.KEYPAIR
    )
    snowflake_username = models.CharField("Snowflake username", max_length=255, blank=True)
    # Basic auth with Snowflake means, in practice, a programmatic access token (PAT) as the
    # password: Snowflake is phasing out password-only sign-in. A PAT has an expiry date.
    snowflake_password_is_pat = models.BooleanField(
        "The password is a programmatic access token (PAT)", default=False)
    snowflake_pat_expires_on = models.DateField(
        "PAT expiry date", null=True, blank=True,
        help_text="As Snowflake showed it when the token was generated. Runs are refused from "
        "that day, and the dashboard warns from 14 days before.")
    snowflake_warehouse = models.CharField("Snowflake warehouse", max_length=520, blank=True)
    snowflake_role = models.CharField("Snowflake role", max_length=520, blank=True)

    # Ciphertexts ("v1:<kid>:<blob>") and who last set each secret.
    api_token_ct = models.TextField(blank=True, editable=False)
    api_token_updated_at = models.DateTimeField(null=True, editable=False)
    api_token_updated_by = models.CharField(max_length=150, blank=True, editable=False)
    snowflake_password_ct = models.TextField(blank=True, editable=False)
    snowflake_password_updated_at = models.DateTimeField(null=True, editable=False)
    snowflake_password_updated_by = models.CharField(max_length=150, blank=True, editable=False)
    private_key_ct = models.TextField(blank=True, editable=False)
    private_key_updated_at = models.DateTimeField(null=True, editable=False)
    private_key_updated_by = models.CharField(max_length=150, blank=True, editable=False)
    private_key_passphrase_ct = models.TextField(blank=True, editable=False)
    private_key_passphrase_updated_at = models.DateTimeField(null=True, editable=False)
    private_key_passphrase_updated_by = models.CharField(
        max_length=150, blank=True, editable=False
    )
    # Public facts about the stored key, kept in clear so the page can show them
    # without decrypting anything.
    private_key_size = models.PositiveIntegerField(null=True, editable=False)
    private_key_fingerprint = models.CharField(max_length=80, blank=True, editable=False)
    private_key_encrypted = models.BooleanField(default=False, editable=False)
    # The public half (base64 DER, as Snowflake's RSA_PUBLIC_KEY takes it): public, so the
    # admin can show the ALTER USER statement without decrypting the private key.
    private_key_public = models.TextField(blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EnvironmentProfileQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "environment profile"

    def __str__(self) -> str:
        return self.name

    # --- secrets ---

    def _encryption_context(self, name: str) -> dict[str, str]:
        if name not in self.SECRETS:
            raise ValueError(f"{name!r} is not a secret of this model")
        return {"model": self._meta.label_lower, "row": str(self.uuid), "field": name}

    def has_secret(self, name: str) -> bool:
        return bool(getattr(self, f"{name}_ct"))

    def set_secret(self, name: str, value: str, *, by: str) -> None:
        """Encrypt and stage `value` (saved with the next save())."""
        setattr(self, f"{name}_ct", encryption.encrypt(value, **self._encryption_context(name)))
        setattr(self, f"{name}_updated_at", timezone.now())
        setattr(self, f"{name}_updated_by", by)

    def clear_secret(self, name: str) -> None:
        self._encryption_context(name)  # validates the name
        setattr(self, f"{name}_ct", "")
        setattr(self, f"{name}_updated_at", None)
        setattr(self, f"{name}_updated_by", "")
        if name == "private_key":
            self.private_key_size = None
            self.private_key_fingerprint = ""
            self.private_key_encrypted = False
            self.private_key_public = ""

    def get_secret(self, name: str) -> str:
        """Decrypt a stored secret ("" when none is stored).

        Raises encryption.CredentialDecryptionError when it cannot be decrypted.
        """
        stored = getattr(self, f"{name}_ct")
        if not stored:
            return ""
        return encryption.decrypt(stored, **self._encryption_context(name))

    def set_private_key(self, key, *, by: str) -> None:
        """Store a runs.private_keys.NormalisedKey and its public facts."""
        self.set_secret("private_key", key.pem, by=by)
        self.private_key_size = key.key_size
        self.private_key_fingerprint = key.fingerprint
        self.private_key_encrypted = key.encrypted
        self.private_key_public = key.public_key

    def drop_secrets_unused_by_auth_type(self) -> list[str]:
        """Clear the secrets the current auth type does not use; return their names."""
        keep = self.SECRETS_BY_AUTH_TYPE[self.snowflake_auth_type]
        dropped = [n for n in self.SECRETS if n not in keep and self.has_secret(n)]
        for name in dropped:
            self.clear_secret(name)
        return dropped

    def secret_status(self, name: str) -> str:
        """A line for the admin page; never includes the secret."""
        if not self.has_secret(name):
            return "Not stored."
        when = timezone.localtime(getattr(self, f"{name}_updated_at"))
        by = getattr(self, f"{name}_updated_by") or "unknown"
        updated = f"updated {when:%Y-%m-%d %H:%M %Z} by {by}"
        if name == "private_key":
            encrypted = ", encrypted" if self.private_key_encrypted else ""
            return (
                f"Stored: RSA {self.private_key_size}, {self.private_key_fingerprint}"
                f"{encrypted}, {updated}"
            )
        return f"Stored, {updated}"

    # --- programmatic access tokens ---

    def _pat_expiry(self) -> date | None:
        if (self.snowflake_auth_type != self.AuthType.BASIC or not self.snowflake_password_is_pat
                or self.snowflake_pat_expires_on is None):
            return None
        return self.snowflake_pat_expires_on

    @property
    def pat_days_left(self) -> int | None:
        """Days until the PAT expires (0 on its last valid day... negative once expired)."""
        expiry = self._pat_expiry()
        return None if expiry is None else (expiry - timezone.localdate()).days

    @property
    def pat_expired(self) -> bool:
        """Snowflake refuses the token from its expiry date on."""
        days = self.pat_days_left
        return days is not None and days <= 0

    @property
    def pat_expiry_warning(self) -> bool:
        days = self.pat_days_left
        return days is not None and days <= PAT_WARNING_DAYS

    @property
    def pat_expiry_note(self) -> str:
        """"PAT expires in 40 days"; from PAT_WARNING_DAYS before, with a call to renew it;
        once expired, the date and the consequence. "" without a PAT expiry date."""
        days = self.pat_days_left
        if days is None:
            return ""
        if days <= 0:
            return (f"PAT expired on {self.snowflake_pat_expires_on:%Y-%m-%d}: runs are "
                    "refused until an admin stores a new one")
        note = f"PAT expires in {days} day{'s' if days != 1 else ''}"
        return f"{note}: renew it soon" if days <= PAT_WARNING_DAYS else note

    def label_with_pat_note(self) -> str:
        """The profile's name for choice lists, kept short enough for a phone's width:
        "Warehouse (PAT expires in 40 days)", with a warning sign from PAT_WARNING_DAYS
        before, "⚠ Warehouse (PAT expired 2026-11-01)" after."""
        days = self.pat_days_left
        if days is None:
            return self.name
        if days <= 0:
            return f"⚠ {self.name} (PAT expired {self.snowflake_pat_expires_on:%Y-%m-%d})"
        label = f"{self.name} (PAT expires in {days} day{'s' if days != 1 else ''})"
        return f"⚠ {label}" if days <= PAT_WARNING_DAYS else label

    # --- access ---

    def user_may_run(self, user) -> bool:
        return EnvironmentProfile.objects.runnable_by(user).filter(pk=self.pk).exists()


class CoalesceStatus(models.TextChoices):
    """Coalesce's runStatus values (docs/coalesce-api.md). Stored as received: a value not
    listed here is kept and shown as is, and counts as still moving."""

    WAITING = "waitingToRun", "Waiting to run"
    INITIALIZING = "initializing", "Initializing"
    RENDERING = "rendering", "Rendering"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Cancelled"


# The run lifecycle, defined once. A run is active (still moving, so the sweep follows it
# and pages poll it) while all three hold:
#   - its start attempt is STARTED, or not yet resolved (SUBMITTING, UNKNOWN: reconciled);
#   - Coalesce has not reported a terminal status;
#   - the sweep has not stopped following it (too old, or left for a person).
# `_ACTIVE` (SQL) and `lifecycle_is_active` (Python) state the same rule; the
# `run_active` partial index uses `_ACTIVE` verbatim so the sweep's query can use it.
TERMINAL = frozenset({CoalesceStatus.COMPLETED, CoalesceStatus.FAILED, CoalesceStatus.CANCELED})
_FOLLOWED_START_STATES = ("started", "submitting", "unknown")
_ACTIVE = (models.Q(status__in=_FOLLOWED_START_STATES, stopped_following_at__isnull=True)
           & ~models.Q(coalesce_status__in=sorted(s.value for s in TERMINAL)))


class Outcome(models.TextChoices):
    """What happened to a run, in the words every page, export and message uses.

    One outcome per run, derived from the start attempt, Coalesce's status and whether
    the sweep still follows it (`outcome_of`); never stored twice under other names.
    """

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    COULD_NOT_START = "could_not_start", "Couldn't start"
    UNKNOWN = "unknown", "Outcome unknown"
    UNFOLLOWED = "unfollowed", "No longer followed"


# Still going: counted apart from finished runs (a success rate is over finished ones).
GOING = frozenset({Outcome.QUEUED, Outcome.RUNNING})
# Why a run couldn't start, by start state, as "Couldn't start: <reason>" reads.
COULD_NOT_START_REASONS = {
    "rejected": "rejected by Coalesce",
    "rate_limited": "rate limited",
    "unreachable": "unreachable",
    "not_sent": "not sent",
}
_BY_COALESCE_STATUS = {
    CoalesceStatus.COMPLETED: Outcome.SUCCEEDED,
    CoalesceStatus.FAILED: Outcome.FAILED,
    CoalesceStatus.CANCELED: Outcome.CANCELLED,
    "": Outcome.QUEUED,
    CoalesceStatus.WAITING: Outcome.QUEUED,
}


def outcome_of(status: str, coalesce_status: str, stopped_following_at) -> Outcome:
    """The one outcome of a run (see Outcome). A Coalesce status this code does not know
    counts as Running: Coalesce has the run and has not said it ended."""
    if status in COULD_NOT_START_REASONS:
        return Outcome.COULD_NOT_START
    if status != "started":  # submitting or unknown: we never heard a clear answer
        return Outcome.UNKNOWN if status == "unknown" or stopped_following_at else Outcome.QUEUED
    outcome = _BY_COALESCE_STATUS.get(coalesce_status, Outcome.RUNNING)
    if outcome in GOING and stopped_following_at is not None:
        return Outcome.UNFOLLOWED
    return outcome


def _active_condition(connection) -> RawSQL:
    """`_ACTIVE` as SQL with its values written in, exactly as the `run_active` index's
    condition is written.

    A database uses a partial index only when it can see that the query implies the
    index's condition, and SQLite sees that only for terms written the same way: with the
    values as bound parameters ("status IN (?, ?, ?)") it would not use the index at all
    (bench/sweep.py --history prints the plans). The SQL is built from `_ACTIVE` itself,
    the way Django writes the index's condition, so the two cannot drift apart.
    """
    vendor = connection.vendor
    if vendor not in _ACTIVE_SQL:
        query = Query(model=Run)
        compiler = query.get_compiler(connection=connection)
        sql, params = query.build_where(_ACTIVE).as_sql(compiler, connection)
        quote = connection.SchemaEditorClass(connection).quote_value
        _ACTIVE_SQL[vendor] = sql % tuple(quote(value) for value in params)
    return RawSQL(_ACTIVE_SQL[vendor], (), output_field=models.BooleanField())


_ACTIVE_SQL: dict[str, str] = {}


def lifecycle_is_active(status: str, coalesce_status: str, stopped_following_at) -> bool:
    """The Python twin of `_ACTIVE`."""
    return (status in _FOLLOWED_START_STATES and stopped_following_at is None
            and coalesce_status not in TERMINAL)


class RunState:
    """What a run's state means, for anything that has a run's fields: a Run, or a row of
    the history read with values() (runs.history.HistoryRow). One definition for both."""

    pk: int
    run_counter: int | None
    status: str
    coalesce_status: str
    stopped_following_at: object

    @property
    def is_active(self) -> bool:
        return lifecycle_is_active(self.status, self.coalesce_status, self.stopped_following_at)

    @property
    def number(self) -> str:
        """The run's one number: Coalesce's runCounter once it has one, else "#<our id>"."""
        return str(self.run_counter) if self.run_counter is not None else f"#{self.pk}"

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.status, self.coalesce_status, self.stopped_following_at)

    @property
    def outcome_reason(self) -> str:
        """Why it couldn't start ("" for other outcomes)."""
        return COULD_NOT_START_REASONS.get(self.status, "")

    @property
    def outcome_words(self) -> str:
        """"Failed", or "Couldn't start: rate limited": the badge's text, and the CSV's."""
        reason = self.outcome_reason
        return f"{self.outcome.label}: {reason}" if reason else str(self.outcome.label)


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        """Runs still moving (see the lifecycle note above `_ACTIVE`)."""
        return self.filter(_active_condition(connections[self.db]))

    def profile_ids(self) -> set[int]:
        """The profiles these runs belong to (no ordering: DISTINCT over the one column)."""
        return set(self.order_by().values_list("profile_id", flat=True).distinct())

    def visible_to(self, user) -> RunQuerySet:
        """Runs `user` may see: auditors (view_run) and superusers all, analysts the runs
        of the profiles they may run."""
        if user.has_perm("runs.view_run"):
            return self.all()
        return self.filter(profile__in=EnvironmentProfile.objects.runnable_by(user))


class Run(RunState, models.Model):
    """One attempt to start a refresh, written before Coalesce is called.

    The row exists before the call so that no attempt is ever lost: a crash between the
    two writes leaves it in SUBMITTING, which the history shows. `request_body` is the
    body as sent with every secret replaced by a marker; secrets are never stored here.
    """

    class Status(models.TextChoices):
        SUBMITTING = "submitting", "Submitting"
        STARTED = "started", "Started"
        REJECTED = "rejected", "Rejected by Coalesce"
        UNREACHABLE = "unreachable", "Could not reach Coalesce"
        RATE_LIMITED = "rate_limited", "Rate limited by Coalesce"
        UNKNOWN = "unknown", "Outcome unknown"
        NOT_SENT = "not_sent", "Not sent"

    # Start states that may exist in Coalesce without our knowing its runCounter: the
    # sweep looks for them in the listing (reconciliation).
    UNRESOLVED = frozenset({Status.SUBMITTING, Status.UNKNOWN})

    uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    # The one-time token of the form that started it: a double click or a resubmitted
    # form carries the same token, and this constraint lets exactly one row in.
    submit_token = models.UUIDField(unique=True, editable=False)
    profile = models.ForeignKey(EnvironmentProfile, on_delete=models.PROTECT, related_name="runs")
    environment_id = models.CharField(max_length=64)  # as sent, even if the profile changes
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, related_name="coalesce_runs"
    )
    created_at = models.DateTimeField(default=timezone.now)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    job_id = models.CharField(max_length=64, blank=True)
    include_selector = models.TextField(blank=True)
    exclude_selector = models.TextField(blank=True)
    parallelism = models.PositiveIntegerField()
    force = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict, blank=True)
    request_body = models.JSONField(default=dict)

    status = models.CharField(max_length=16, choices=Status, default=Status.SUBMITTING)
    run_counter = models.BigIntegerField(null=True, blank=True)
    run_link = models.CharField(max_length=500, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    error_string = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    raw_response = models.TextField(blank=True)  # scrubbed and truncated; only non-JSON answers
    answered_at = models.DateTimeField(null=True, blank=True)

    # Following the run in Coalesce once it started (filled by the status sweep).
    coalesce_status = models.CharField(max_length=32, blank=True)
    coalesce_started_at = models.DateTimeField(null=True, blank=True)
    coalesce_ended_at = models.DateTimeField(null=True, blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reruns"
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # Set when the sweep gives up on a run (too old); the history shows "no longer followed".
    stopped_following_at = models.DateTimeField(null=True, blank=True)
    # Node results as parsed by runs.results (NodeResult.to_json()), fetched when it ends.
    results = models.JSONField(default=list, blank=True)
    results_fetched_at = models.DateTimeField(null=True, blank=True)
    # The name of the personal access token that started it through the API ("" when it
    # was started from a page): the run page and the history say "via API token <name>".
    via_token_name = models.CharField(max_length=100, blank=True)
    # Until when someone has this run's page open (its polling renews it): the sweep
    # fetches a running run's node results only while this is in the future.
    watched_until = models.DateTimeField(null=True, blank=True)
    # The saved form it was started from, if any (presets may be deleted later).
    preset = models.ForeignKey("Preset", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="runs")
    # Written with the results or the final status (runs.summaries), so the history reads
    # them without parsing results: "2 of 5 nodes failed: …" and the search's text (node
    # names and errors, Coalesce's failure reason), lower case.
    failure_summary = models.TextField(blank=True)
    search_text = models.TextField(blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("force_run", "Can force a refresh after a failed deployment"),
            ("cancel_run", "Can cancel a running refresh"),
        ]
        # The history pages by keyset on (created_at, id), newest first; each filter
        # has an index that leads with it and ends with that key, so any page at any
        # depth is an index range scan.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_newest_first"),
            models.Index(fields=["profile", "-created_at", "-id"], name="run_profile_newest"),
            models.Index(fields=["created_by", "-created_at", "-id"], name="run_user_newest"),
            # An analyst's "Started by" choices: the users of the profiles they may see.
            models.Index(fields=["created_by", "profile", "-created_at", "-id"],
                         name="run_user_profile_newest"),
            models.Index(fields=["status", "-created_at", "-id"], name="run_status_newest"),
            models.Index(fields=["coalesce_status", "-created_at", "-id"],
                         name="run_cstatus_newest"),
            models.Index(fields=["profile", "status", "-created_at", "-id"],
                         name="run_profile_status_newest"),
            models.Index(fields=["profile", "coalesce_status", "-created_at", "-id"],
                         name="run_profile_cstatus_newest"),
            models.Index(fields=["-created_at", "-id"], condition=models.Q(force=True),
                         name="run_forced_newest"),
            models.Index(fields=["run_counter"], name="run_counter"),
            # The sweep's question, "which runs are still moving?", answered from a small
            # index: its condition is Run.objects.active()'s filter, verbatim, so the
            # planner can prove the query implies it (bench/follow.py shows the plan).
            # Status leads: SQLite's planner then prefers this small index to the status
            # indexes above, whose estimates it reads first.
            models.Index(fields=["status", "profile", "created_at"], name="run_active",
                         condition=_ACTIVE),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} on {self.profile}"

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        """Coalesce reported a terminal status."""
        return self.coalesce_status in TERMINAL

    @property
    def targets_everything(self) -> bool:
        return not (self.job_id or self.include_selector or self.exclude_selector)

    def log(self, kind: str, message: str, *, actor: str = "") -> RunEvent:
        return RunEvent.objects.create(run=self, kind=kind, message=message, actor=actor)

    def preview_check(self):
        """The preview compared with the nodes Coalesce ran (runs.preview_check.PreviewCheck),
        or None when there was no preview or no node results yet."""
        from runs.preview_check import check_run  # the comparison lives with its wording

        return check_run(self)


class RunEvent(models.Model):
    """An append-only timeline entry: every state change of a run, with its time."""

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32)
    message = models.TextField()
    actor = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind}"


class AuditEntry(models.Model):
    """An append-only, hash-chained record of a security-relevant action.

    Each entry's hash covers its own content, its sequence number and the previous
    entry's hash, so `verify_audit_log` detects an edited, deleted or reordered entry.
    `details` names fields, never their values. Written only through runs.audit.record().
    """

    class Action(models.TextChoices):
        PROFILE_CREATED = "profile_created", "Profile created"
        PROFILE_CHANGED = "profile_changed", "Profile changed"
        PROFILE_DELETED = "profile_deleted", "Profile deleted"
        CREDENTIAL_STORED = "credential_stored", "Credential stored"
        CREDENTIAL_REPLACED = "credential_replaced", "Credential replaced"
        CREDENTIAL_CLEARED = "credential_cleared", "Credential cleared"
        CREDENTIALS_ROTATED = "credentials_rotated", "Credentials rotated to a new key"
        RUN_STARTED = "run_started", "Run started"
        RUN_FORCED = "run_forced", "Run forced"
        RUN_REJECTED = "run_rejected", "Run rejected"
        RUN_CANCEL_REQUESTED = "run_cancel_requested", "Run cancel requested"
        RUN_CANCELLED = "run_cancelled", "Run cancelled"
        RUN_CANCEL_FAILED = "run_cancel_failed", "Run cancel failed"
        RUN_RERUN = "run_rerun", "Failed nodes rerun"
        LOGIN_SUCCEEDED = "login_succeeded", "Login succeeded"
        LOGIN_FAILED = "login_failed", "Login failed"
        TOKEN_CREATED = "token_created", "API token created"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        LOGIN_LOCKED_OUT = "login_locked_out", "Login locked out"

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=150, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    action = models.CharField(max_length=32, choices=Action, editable=False)
    target = models.CharField(max_length=300, blank=True, editable=False)
    details = models.JSONField(default=dict, blank=True, editable=False)
    previous_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["action", "-seq"], name="audit_action_newest"),
            models.Index(fields=["actor", "-seq"], name="audit_actor_newest"),
            models.Index(fields=["-at"], name="audit_at_newest"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_action_display()} by {self.actor or 'anonymous'}"


class RunCount(models.Model):
    """How many runs of an environment fall in one chart part (runs.charts.OUTCOME_LABELS)
    on one day of the site's time zone, with the total seconds of the succeeded ones that
    have both times.

    Written only by database triggers on runs_run (runs.counts), read by the charts.
    """

    profile = models.ForeignKey(EnvironmentProfile, on_delete=models.CASCADE,
                                related_name="+", db_constraint=False)
    day = models.BigIntegerField()  # days since 1970-01-01 in RunCountZone's zone
    bucket = models.CharField(max_length=16)
    n = models.IntegerField(default=0)
    seconds = models.FloatField(default=0)
    timed = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile", "day", "bucket"],
                                               name="runcount_one_per_part")]
        indexes = [models.Index(fields=["day", "profile"], name="runcount_day")]


class RunCountZone(models.Model):
    """The one time zone whose days RunCount counts in (runs.counts.rebuild writes it)."""

    zone = models.CharField(max_length=64)


class SweepState(models.Model):
    """Per-environment bookkeeping for the status sweep.

    A worker claims an environment with one conditional UPDATE that moves `next_sweep_at`
    forward only if it is due (the database lets exactly one concurrent UPDATE match),
    before it calls Coalesce. So two workers never poll the same environment in one
    interval, and a worker that dies mid-sweep holds no lock: its claim simply expires at
    `next_sweep_at`.
    """

    profile = models.OneToOneField(EnvironmentProfile, on_delete=models.CASCADE,
                                   related_name="sweep_state")
    next_sweep_at = models.DateTimeField(default=timezone.now)
    backoff_until = models.DateTimeField(null=True, blank=True)
    backoff_seconds = models.PositiveIntegerField(default=0)
    last_sweep_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Sweep state of {self.profile}"


# The models of other concerns live in their own modules; importing them here is what
# registers them with the runs app:
# - runs.models_choosing: what the run form chooses from (node lists, checked jobs,
#   previews, presets);
# - runs.models_ops: API tokens, the /metrics counters, single sign-on identities;
# - runs.notifications.models: notification destinations, rules and deliveries.
from runs.models_choosing import (  # noqa: E402, F401
    KnownJob,
    NodeCatalogue,
    Preset,
    RunPreview,
)
from runs.models_ops import ApiToken, Metric, SSOIdentity  # noqa: E402, F401
from runs.notifications.models import (  # noqa: E402, F401
    Delivery,
    Destination,
    NotificationPreference,
    NotificationRule,
    RunSubscription,
)
