"""The worker's side: claim one delivery, send it, record how it went, retry later.

Each delivery is its own task, so a slow or failing destination holds up only itself,
never the sweep that follows runs nor another destination. A claim is one conditional
UPDATE (pending, due, not claimed by a live worker), so two workers never both send it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task

from runs.encryption import CredentialDecryptionError
from runs.notifications import transports
from runs.notifications.models import Delivery
from runs.redaction import scrub

logger = logging.getLogger(__name__)

# Longer than any one attempt (the transports' timeouts), so a live claim is never stolen.
CLAIM_FOR = timedelta(minutes=2)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=4)
GIVE_UP_AFTER = timedelta(hours=24)


@task()
def send_delivery(pk: int) -> str:
    return deliver(pk)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … doubling, at most 4 h between attempts."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


def claim(pk: int, now) -> bool:
    due = Delivery.objects.filter(pk=pk, status=Delivery.Status.PENDING, next_attempt_at__lte=now)
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return due.filter(free).update(claimed_until=now + CLAIM_FOR,
                                   attempts=F("attempts") + 1) == 1


def requeue_stranded(now=None) -> int:
    """Queue again the pending deliveries whose task was lost (a worker killed mid-send
    leaves its claim to expire and nothing queued). Returns how many were queued; a
    delivery queued twice is still sent once (the claim)."""
    now = now or timezone.now()
    stranded = Delivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        status=Delivery.Status.PENDING, next_attempt_at__lt=now - CLAIM_FOR)
    pks = list(stranded.values_list("pk", flat=True)[:1000])
    for pk in pks:
        send_delivery.enqueue(pk)
    return len(pks)


def deliver(pk: int) -> str:
    now = timezone.now()
    if not claim(pk, now):
        return f"delivery {pk}: not due, or another worker has it"
    delivery = Delivery.objects.select_related(
        "run__profile", "run__created_by", "destination").get(pk=pk)
    try:
        transports.send(delivery)
    except transports.SendError as exc:
        return _failed(delivery, exc.message, retry=exc.retry, now=now)
    except CredentialDecryptionError:
        return _failed(delivery, "The destination's URL or secret cannot be decrypted with "
                       "the configured keys; an admin must enter it again.", retry=False,
                       now=now)
    delivery.status, delivery.sent_at, delivery.claimed_until = (
        Delivery.Status.SENT, timezone.now(), None)
    delivery.last_error = ""
    delivery.save(update_fields=["status", "sent_at", "claimed_until", "last_error"])
    return f"delivery {pk}: sent"


def _failed(delivery: Delivery, message: str, *, retry: bool, now) -> str:
    delivery.last_error = scrub(message)[:500]
    delivery.claimed_until = None
    next_at = now + retry_delay(delivery.attempts)
    if retry and next_at <= delivery.created_at + GIVE_UP_AFTER:
        delivery.next_attempt_at = next_at
        delivery.save(update_fields=["last_error", "claimed_until", "next_attempt_at"])
        send_delivery.using(run_after=next_at).enqueue(delivery.pk)
        outcome = f"retry at {next_at:%H:%M:%S}"
    else:
        delivery.status = Delivery.Status.GAVE_UP if retry else Delivery.Status.FAILED
        delivery.save(update_fields=["last_error", "claimed_until", "status"])
        outcome = delivery.get_status_display().lower()
    logger.warning("Notification %s (attempt %s): %s; %s", delivery.pk, delivery.attempts,
                   delivery.last_error, outcome)
    return f"delivery {delivery.pk}: {outcome}"
