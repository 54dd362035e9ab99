"""What the run form chooses from: each profile's cached node list, the jobs it has
checked, the preview a run was started with, and saved presets. Imported by runs.models, so
Django finds them in the runs app."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from runs.models import MAX_PARALLELISM, EnvironmentProfile, Run


class NodeCatalogue(models.Model):
    """The cached node list of one profile's environment, for the picker and the preview.

    `nodes` keeps only what the preview needs, one compact list per node:
    [id, name, location, nodeType, [[locationName, nodeName], ...]] (runs.catalogue reads
    and writes it). A failed refresh keeps the last good list and records `last_error`.
    """

    profile = models.OneToOneField(EnvironmentProfile, on_delete=models.CASCADE,
                                   related_name="node_catalogue")
    nodes = models.JSONField(default=list, blank=True)
    node_count = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)  # the last good refresh
    requested_at = models.DateTimeField(null=True, blank=True)  # a refresh was queued
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)  # of the last attempt; "" when it worked

    def __str__(self) -> str:
        return f"Node list of {self.profile}"


class RunPreview(models.Model):
    """What the form's preview said a run would refresh, kept apart from the run row so
    the history never reads it."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="preview")
    node_ids = models.JSONField(default=list)
    catalogue_refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Preview of {self.run}: {len(self.node_ids)} nodes"


class KnownJob(models.Model):
    """What the job check last learned about one job of a profile's environment: its name
    and selectors, so the run form can preview a run of the job from the database.

    Written only by the job check (runs.service.check_job), which is the one call that
    asks Coalesce about jobs; a 404 there forgets the job. A job changed in Coalesce since
    `checked_at` shows up as a preview that didn't match, on the run page.
    """

    profile = models.ForeignKey(EnvironmentProfile, on_delete=models.CASCADE,
                                related_name="known_jobs")
    job_id = models.CharField(max_length=64)
    name = models.TextField(blank=True)
    include_selector = models.TextField(blank=True)
    exclude_selector = models.TextField(blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile", "job_id"],
                                               name="known_job_unique_per_profile")]

    def __str__(self) -> str:
        return f"Job {self.job_id} of {self.profile}"


class Preset(models.Model):
    """A saved run form, per profile: private to its owner or shared with the profile's
    groups. Never holds the force option."""

    profile = models.ForeignKey(EnvironmentProfile, on_delete=models.CASCADE,
                                related_name="presets")
    name = models.CharField(max_length=100)
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="presets")
    shared = models.BooleanField("Shared with the environment's groups", default=False)
    job_id = models.CharField(max_length=64, blank=True)
    include_selector = models.TextField(blank=True)
    exclude_selector = models.TextField(blank=True)
    parallelism = models.PositiveIntegerField(
        default=16, validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLELISM)])
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["profile", "name"]
        constraints = [models.UniqueConstraint(fields=["profile", "owner", "name"],
                                               name="preset_unique_name_per_owner")]

    def __str__(self) -> str:
        return f"{self.name} ({self.profile})"

    @classmethod
    def usable_by(cls, user, profile=None) -> models.QuerySet[Preset]:
        """Presets on profiles `user` may run: their own, and shared ones."""
        presets = cls.objects.filter(profile__in=EnvironmentProfile.objects.runnable_by(user))
        if profile is not None:
            presets = presets.filter(profile=profile)
        return presets.filter(models.Q(owner=user) | models.Q(shared=True))
