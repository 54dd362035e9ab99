"""Models for access and operations: API tokens, the /metrics counters and single sign-on
identities. Imported by runs.models, so Django finds them in the runs app."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Metric(models.Model):
    """A number for /metrics, shared by every process (web workers and the task worker)
    because it lives in the database: counters (`value` grows) and last-seen values (the
    sweep's heartbeat and duration). Written by runs.metrics only."""

    name = models.CharField(max_length=64)
    labels = models.CharField(max_length=200, blank=True)  # Prometheus text: a="x",b="y"
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_key")]

    def __str__(self) -> str:
        return f"{self.name}{{{self.labels}}} {self.value:g}"


class SSOIdentity(models.Model):
    """Which identity-provider account a user is: (issuer, subject), the only stable
    identifier OpenID Connect guarantees. Users are matched on it, never on e-mail, so an
    identity-provider account can never take over a local account (the break-glass
    superuser) that happens to share an address."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE,
                                related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    last_login_groups = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"],
                                               name="sso_identity_key")]
        verbose_name = "single sign-on identity"

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class ApiToken(models.Model):
    """A personal access token for the JSON API (runs.tokens makes and checks them).

    Only the SHA-256 of the token is stored: it has 256 random bits, so a fast hash is
    enough and lets each request find its token with one indexed lookup. `prefix` (the
    first characters, never enough to use) tells a person's tokens apart on the page.
    """

    class Scope(models.TextChoices):
        READ = "runs:read", "Read runs (runs:read)"
        START = "runs:start", "Start, rerun and cancel runs (runs:start)"

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], condition=models.Q(
                revoked_at__isnull=True), name="api_token_live_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return (self.revoked_at is None
                and (self.expires_at is None or self.expires_at > now)
                and self.user.is_active)

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "Revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "Expired"
        return "Active"
