from __future__ import annotations

from django.core.management.base import BaseCommand

from runs import tasks
from runs.models import Run


class Command(BaseCommand):
    help = (
        "Queue a status sweep for the workers unless one is already waiting. The sweep "
        "reschedules itself while runs are active; run this after a deploy or when starting "
        "workers, so runs started before the restart are followed again."
    )

    def handle(self, *args, **options):
        if not Run.objects.active().exists():
            self.stdout.write("No active runs: nothing to follow.")
            return
        tasks.schedule_sweep(delay=0)
        self.stdout.write("A status sweep is queued.")
