from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Coalesce refresh runs"

    def ready(self) -> None:
        from runs import checks, signals  # noqa: F401  (registers checks and receivers)
