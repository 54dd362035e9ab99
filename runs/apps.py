from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Coalesce refresh runs"

    def ready(self) -> None:
        from runs import checks, counts, signals  # noqa: F401  (registers checks and receivers)

        # A changed TIME_ZONE takes effect in the charts' counts at the next migrate.
        post_migrate.connect(counts.follow_site_zone, sender=self)
