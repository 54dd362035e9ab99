"""Re-encrypting stored credentials under the newest key (`rotate_credentials_key`).

Operator procedure: generate a key, deploy with "new,old", run the rotation, run it with
--check (every secret decrypts, none left on an old key), then deploy with "new" only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction

from runs import audit, encryption
from runs.models import Destination, EnvironmentProfile

# Every model holding encrypted secrets: each has SECRETS, `<name>_ct` columns, uuid,
# get_secret() and _encryption_context().
ENCRYPTED_MODELS = (EnvironmentProfile, Destination)

BATCH_SIZE = 100


@dataclass
class RotationReport:
    primary: str
    before: Counter = field(default_factory=Counter)  # secrets per key id, before rotating
    rotated: int = 0
    failures: list[str] = field(default_factory=list)  # "profile <uuid> field <name>", no data

    def summary(self) -> str:
        counts = ", ".join(f"{kid}: {n}" for kid, n in sorted(self.before.items())) or "none"
        return (f"primary key {self.primary}; secrets per key id: {counts}; "
                f"re-encrypted: {self.rotated}; failures: {len(self.failures)}")


def _self_test(ring: encryption.KeyRing) -> None:
    """Refuse to touch any row unless the primary key round-trips a fresh value."""
    ctx = {"model": "self-test", "row": "0", "field": "probe", "ring": ring}
    if encryption.decrypt(encryption.encrypt("probe", **ctx), **ctx) != "probe":
        raise encryption.KeyRingError("The primary key failed its self-test.")


def rotate_credentials(*, dry_run: bool = False, check_only: bool = False) -> RotationReport:
    """Re-encrypt every secret not on the primary key; restartable and idempotent.

    With check_only, decrypt everything and report, changing nothing. Secrets already on
    the primary key are skipped, so a run interrupted halfway can simply be started again.
    """
    ring = encryption.key_ring()
    _self_test(ring)
    report = RotationReport(primary=ring.primary)
    for model in ENCRYPTED_MODELS:
        pks = list(model.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(pks), BATCH_SIZE):
            with transaction.atomic():
                batch = model.objects.select_for_update().filter(
                    pk__in=pks[start:start + BATCH_SIZE]
                )
                for row in batch:
                    _rotate_profile(row, ring, report, write=not (dry_run or check_only))
    if report.rotated and not (dry_run or check_only):
        audit.record(audit.Action.CREDENTIALS_ROTATED, actor="rotate_credentials_key",
                     target=f"key {ring.primary}",
                     details={"re_encrypted": report.rotated, "before": dict(report.before)})
    return report


def _rotate_profile(profile, ring, report: RotationReport, *, write: bool) -> None:
    changed = []
    for name in type(profile).SECRETS:
        stored = getattr(profile, f"{name}_ct")
        if not stored:
            continue
        kid = encryption.kid_of(stored)
        report.before[kid or "unknown"] += 1
        try:
            plaintext = profile.get_secret(name)
        except encryption.CredentialDecryptionError:
            label = type(profile)._meta.model_name.replace("environmentprofile", "profile")
            report.failures.append(f"{label} {profile.uuid} field {name}")
            continue
        if kid == ring.primary:
            continue
        report.rotated += 1
        if write:
            # Same associated data, new key; who/when of the secret itself is unchanged.
            setattr(profile, f"{name}_ct", encryption.encrypt(
                plaintext, **profile._encryption_context(name), ring=ring))
            changed.append(f"{name}_ct")
    if changed:
        profile.save(update_fields=changed)
