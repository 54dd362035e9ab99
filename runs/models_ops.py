"""Models for operations and sign-in: the /metrics counters and single sign-on identities.
Imported by runs.models, so Django finds them in the runs app."""

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
