from __future__ import annotations

from django.core.management.base import BaseCommand

from runs.notifications.delivery import requeue_stranded


class Command(BaseCommand):
    help = ("Queue again the notifications waiting longer than they should (their task was "
            "lost with a worker). Safe to run at any time, e.g. after a deploy or from cron: "
            "each is still sent once.")

    def handle(self, *args, **options):
        self.stdout.write(f"{requeue_stranded()} notification(s) queued again.")
