from __future__ import annotations

from django.core.management.base import BaseCommand

from runs.encryption import generate_key


class Command(BaseCommand):
    help = (
        "Print a new 'keyid:key' entry for CREDENTIALS_ENCRYPTION_KEYS. Put it first in the "
        "list; keep older keys after it until rotate_credentials_key --check is clean."
    )
    # Its purpose is to fix the missing key that runs.E002 reports: the checks must not
    # stop it on a fresh install.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--kid", help="Key id to use (default: a random one).")

    def handle(self, *args, kid=None, **options):
        self.stdout.write(generate_key(kid))
