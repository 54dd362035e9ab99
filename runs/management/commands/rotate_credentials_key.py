from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from runs.encryption import KeyRingError
from runs.rotation import rotate_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential with the first key in CREDENTIALS_ENCRYPTION_KEYS. "
        "Restartable and idempotent. --dry-run counts what would change; --check verifies "
        "that every secret decrypts and none is left on an older key. Prints counts only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--check", action="store_true")

    def handle(self, *args, dry_run=False, check=False, **options):
        try:
            report = rotate_credentials(dry_run=dry_run, check_only=check)
        except KeyRingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(report.summary())
        for failure in report.failures:
            self.stderr.write(f"cannot decrypt: {failure}")
        if report.failures:
            raise CommandError(f"{len(report.failures)} secret(s) could not be decrypted.")
        if check and report.rotated:
            raise CommandError(f"{report.rotated} secret(s) are still on an older key.")
