from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from runs.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain and name the first edited, deleted or reordered "
        "entry. Prints the head (seq:hash); keep it elsewhere and pass it back with --anchor "
        "to also detect entries deleted from the end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--anchor", help="SEQ:HASH printed by an earlier run.")

    def handle(self, *args, anchor=None, **options):
        report = verify_chain(anchor=_parse_anchor(anchor) if anchor else None)
        if not report.ok:
            raise CommandError(f"Audit log broken at entry #{report.broken_seq}: "
                               f"{report.problem}. {report.checked} entries before it are intact.")
        self.stdout.write(f"Audit log intact: {report.checked} entries; "
                          f"head {report.head_seq}:{report.head_hash}")


def _parse_anchor(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise CommandError("--anchor takes SEQ:HASH as printed by verify_audit_log.")
    return int(seq), digest
