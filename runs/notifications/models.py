"""Notification rules, destinations, subscriptions and the delivery log (the outbox).

A Delivery row is written, in the transaction that changed the run's outcome, for each
rule and destination (or subscriber) the event concerns; (run, event, target) is unique,
so however many workers see the change there is one row, and a worker claims a row with
one conditional UPDATE before it sends, so there is one message.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from runs import encryption
from runs.models import EnvironmentProfile, Outcome, Run

# The events are the finished outcomes, in the words every page uses.
EVENTS = [(o.value, o.label) for o in Outcome if o not in (Outcome.QUEUED, Outcome.RUNNING)]
EVENT_VALUES = frozenset(value for value, _ in EVENTS)


class Destination(models.Model):
    """Where messages go. The URL (Slack's contains its token) and the webhook signing
    secret are encrypted like the profiles' credentials and never shown again."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack incoming webhook"
        WEBHOOK = "webhook", "Webhook (signed JSON)"

    SECRETS = ("url", "signing_secret")

    uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind)
    email_to = models.CharField("Email addresses", max_length=500, blank=True,
                                help_text="Comma-separated (email destinations only).")
    url_ct = models.TextField(blank=True, editable=False)
    signing_secret_ct = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def _encryption_context(self, name: str) -> dict[str, str]:
        return {"model": self._meta.label_lower, "row": str(self.uuid), "field": name}

    def set_secret(self, name: str, value: str) -> None:
        stored = encryption.encrypt(value, **self._encryption_context(name)) if value else ""
        setattr(self, f"{name}_ct", stored)

    def get_secret(self, name: str) -> str:
        stored = getattr(self, f"{name}_ct")
        return encryption.decrypt(stored, **self._encryption_context(name)) if stored else ""

    def has_secret(self, name: str) -> bool:
        return bool(getattr(self, f"{name}_ct"))


class NotificationRule(models.Model):
    """An admin's rule: these events of this profile's runs go to this destination."""

    profile = models.ForeignKey(EnvironmentProfile, on_delete=models.CASCADE,
                                related_name="notification_rules")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="rules")
    events = models.JSONField(default=list, help_text="Which outcomes are sent.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile", "destination"],
                                               name="rule_profile_destination_unique")]

    def __str__(self) -> str:
        return f"{self.profile} → {self.destination}"


class RunSubscription(models.Model):
    """"Notify me when this run ends": an email to the user when it has an outcome."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "user"],
                                               name="subscription_run_user_unique")]


class NotificationPreference(models.Model):
    """My settings: whether "Notify me when this run ends" starts ticked."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_preference")
    notify_by_default = models.BooleanField(
        "Tick “Notify me when this run ends” on new runs", default=False)


class Delivery(models.Model):
    """One message for one event to one destination or subscriber, and how it went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (not retried)"
        GAVE_UP = "gave_up", "Gave up after retrying"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=EVENTS)
    target = models.CharField(max_length=64)  # "rule:<id>" or "user:<id>": the unique key
    destination = models.ForeignKey(Destination, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="deliveries")
    email = models.EmailField(blank=True)  # a subscriber's address
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)  # scrubbed: never a URL or a secret

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "event", "target"],
                                               name="delivery_once_per_event_and_target")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.get_event_display()} of run {self.run_id} to {self.recipient}"

    @property
    def recipient(self) -> str:
        return str(self.destination) if self.destination_id else self.email
