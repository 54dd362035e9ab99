"""The audit trail: append-only, hash-chained entries for security-relevant actions.

Each entry's hash is sha256(previous hash + canonical JSON of the entry, its sequence
number included). Editing an entry breaks its own hash; deleting or reordering entries
breaks the link to the previous hash or the sequence. Deleting the newest entries leaves
a valid but shorter chain, so `verify_audit_log` prints the head (seq and hash) for an
operator to keep elsewhere and can check it later with --anchor.

With AUDIT_HMAC_KEY set (kept outside the database), new entries are keyed:
hmac-sha256(key, the same text). Someone who can write to the database but does not have
the key can then no longer rewrite the chain and recompute the hashes. A chain may turn
from unkeyed to keyed once (when the key is first configured), never back; and while a
key is configured, the newest entry must be keyed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

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


def digest(entry: AuditEntry, previous_hash: str, key: bytes | None = None) -> str:
    text = f"{previous_hash}\n{_payload(entry)}".encode()
    if key:
        return hmac.new(key, text, hashlib.sha256).hexdigest()
    return hashlib.sha256(text).hexdigest()


def _key() -> bytes | None:
    key = getattr(settings, "AUDIT_HMAC_KEY", "")
    return key.encode() if key else None


def stored_ip(ip: str | None) -> str | None:
    """The address as the database gives it back, so the hash covers what is stored.

    An IPv4-mapped IPv6 address ("::ffff:127.0.0.1", from a dual-stack bind or a proxy)
    is kept as the IPv4 address it is; other IPv6 addresses take Django's form.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return clean_ipv6_address(str(address))
    return str(address)


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
        ip=stored_ip(ip),
        action=action,
        target=target[:300],
        details=details,
        previous_hash=last["hash"] if last else GENESIS,
    )
    entry.hash = digest(entry, entry.previous_hash, _key())
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
    key = _key()
    stray = AuditEntry.objects.filter(seq__lt=1).order_by("seq").values_list("seq", flat=True)
    if stray:
        # Numbering starts at 1: such a row was inserted by hand, outside the chain.
        return ChainReport(0, 0, GENESIS, broken_seq=stray[0],
                           problem="its sequence number is below 1, so it was inserted "
                           "outside the chain")
    state = _Walk(key=key)
    while True:
        batch = list(AuditEntry.objects.filter(seq__gte=state.expected_seq)
                     .order_by("seq")[:batch_size])
        if not batch:
            break
        for entry in batch:
            problem = state.check(entry, anchor)
            if problem:
                return ChainReport(state.checked, state.last_seq, state.previous,
                                   broken_seq=entry.seq, problem=problem)
    if anchor and anchor[0] > state.last_seq:
        return ChainReport(state.checked, state.last_seq, state.previous, broken_seq=anchor[0],
                           problem=f"entry #{anchor[0]} of the anchor is missing (entries at "
                           "the end were deleted)")
    if key and state.checked and not state.keyed:
        return ChainReport(state.checked, state.last_seq, state.previous,
                           broken_seq=state.last_seq,
                           problem="the newest entry is not keyed with AUDIT_HMAC_KEY (the "
                           "chain was rewritten without the key, or the key was only just set)")
    return ChainReport(state.checked, state.last_seq, state.previous)


@dataclass
class _Walk:
    key: bytes | None
    expected_seq: int = 1
    previous: str = GENESIS
    checked: int = 0
    last_seq: int = 0
    keyed: bool = False  # the entries from here on must be keyed

    def check(self, entry: AuditEntry, anchor: tuple[int, str] | None) -> str | None:
        if entry.seq != self.expected_seq:
            return f"entry #{self.expected_seq} is missing (deleted), next found is #{entry.seq}"
        if entry.previous_hash != self.previous:
            return "does not follow the entry before it (an entry was deleted, or moved)"
        keyed = self._keyed(entry)
        if keyed is None:
            return "its content does not match its hash (edited)"
        if self.keyed and not keyed:
            return "it is not keyed although the entries before it are (the chain was "\
                   "rewritten without AUDIT_HMAC_KEY)"
        if anchor and entry.seq == anchor[0] and entry.hash != anchor[1]:
            return "does not match the anchor hash (the chain was rewritten)"
        self.keyed = keyed
        self.previous, self.last_seq = entry.hash, entry.seq
        self.expected_seq, self.checked = entry.seq + 1, self.checked + 1
        return None

    def _keyed(self, entry: AuditEntry) -> bool | None:
        """True/False when the hash matches with/without the key; None when neither does."""
        for ip in _hashed_ip_forms(entry.ip):
            entry.ip = ip
            if self.key and hmac.compare_digest(digest(entry, entry.previous_hash, self.key),
                                                entry.hash):
                return True
            if digest(entry, entry.previous_hash) == entry.hash:
                return False
        return None


def _hashed_ip_forms(ip: str | None) -> list[str | None]:
    """The address as stored, then as entries written before `stored_ip` hashed it
    (Python's form of an IPv4-mapped IPv6 address, "::ffff:7f00:1")."""
    forms = [ip]
    if ip:
        try:
            older = str(ipaddress.ip_address(ip))
        except ValueError:
            older = ip
        if older != ip:
            forms.append(older)
    return forms
