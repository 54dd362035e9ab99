"""The audit trail: append-only, hash-chained entries for security-relevant actions.

Each entry's hash is sha256(previous hash + canonical JSON of the entry, its sequence
number included). Editing an entry breaks its own hash; deleting or reordering entries
breaks the link to the previous hash or the sequence. Deleting the newest entries leaves
a valid but shorter chain, so `verify_audit_log` prints the head (seq and hash) for an
operator to keep elsewhere and can check it later with --anchor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from runs.models import AuditEntry

GENESIS = "0" * 64
Action = AuditEntry.Action
# Any constant: serialises appenders on PostgreSQL so they never race for a sequence number.
_ADVISORY_LOCK_ID = 0x5EC0A1D17
_ATTEMPTS = 5


def _payload(entry: AuditEntry) -> str:
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {"seq": entry.seq, "at": at, "actor": entry.actor, "ip": entry.ip or "",
         "action": entry.action, "target": entry.target, "details": entry.details},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )


def digest(entry: AuditEntry, previous_hash: str) -> str:
    return hashlib.sha256(f"{previous_hash}\n{_payload(entry)}".encode()).hexdigest()


def record(action: str, *, actor: str = "", ip: str | None = None, target: str = "",
           details: dict | None = None) -> AuditEntry:
    """Append one entry. `details` must name things (fields, ids), never secret values."""
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return _append(action, actor, ip, target, details or {})
        except IntegrityError:
            # Another process took this sequence number (SQLite has no advisory lock).
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _append(action, actor, ip, target, details) -> AuditEntry:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_ID])
    last = AuditEntry.objects.order_by("-seq").values("seq", "hash").first()
    entry = AuditEntry(
        seq=last["seq"] + 1 if last else 1,
        at=timezone.now(),
        actor=actor[:150],
        ip=ip,
        action=action,
        target=target[:300],
        details=details,
        previous_hash=last["hash"] if last else GENESIS,
    )
    entry.hash = digest(entry, entry.previous_hash)
    entry.save()
    return entry


def record_request(request, action: str, *, target: str = "", details: dict | None = None,
                   actor: str | None = None) -> AuditEntry:
    """`record` with the actor and IP taken from the request."""
    from runs.http import client_ip

    if actor is None:
        user = getattr(request, "user", None)
        actor = user.get_username() if user is not None and user.is_authenticated else ""
    return record(action, actor=actor, ip=client_ip(request), target=target, details=details)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify_chain(*, batch_size: int = 2000, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain in sequence order and report the first entry that breaks it."""
    expected_seq, previous, checked, last_seq = 1, GENESIS, 0, 0
    while True:
        batch = list(AuditEntry.objects.filter(seq__gte=expected_seq).order_by("seq")[:batch_size])
        if not batch:
            break
        for entry in batch:
            problem = _problem(entry, expected_seq, previous, anchor)
            if problem:
                return ChainReport(checked, last_seq, previous, broken_seq=entry.seq,
                                   problem=problem)
            previous, last_seq, expected_seq, checked = entry.hash, entry.seq, entry.seq + 1, \
                checked + 1
    if anchor and anchor[0] > last_seq:
        return ChainReport(checked, last_seq, previous, broken_seq=anchor[0],
                           problem=f"entry #{anchor[0]} of the anchor is missing (entries at "
                           "the end were deleted)")
    return ChainReport(checked, last_seq, previous)


def _problem(entry: AuditEntry, expected_seq: int, previous: str,
             anchor: tuple[int, str] | None) -> str | None:
    if entry.seq != expected_seq:
        return f"entry #{expected_seq} is missing (deleted), next found is #{entry.seq}"
    if entry.previous_hash != previous:
        return "does not follow the entry before it (an entry was deleted, or moved)"
    if digest(entry, entry.previous_hash) != entry.hash:
        return "its content does not match its hash (edited)"
    if anchor and entry.seq == anchor[0] and entry.hash != anchor[1]:
        return "does not match the anchor hash (the chain was rewritten)"
    return None
