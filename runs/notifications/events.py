"""The hook: a run's outcome changed, so write who must hear about it (the outbox)."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from runs.models import Outcome, Run
from runs.notifications.models import (
    EVENT_VALUES,
    Delivery,
    NotificationRule,
    RunSubscription,
)

logger = logging.getLogger(__name__)


def outcome_changed(run: Run, previous: Outcome | str) -> list[Delivery]:
    """Call where a run's outcome may have changed (after the write, in its transaction).

    Writes one Delivery per rule of the run's profile that wants this event and one per
    subscriber; a second call for the same event (another worker, a retried sweep) writes
    nothing, by the unique (run, event, target). The worker sends them after the commit.
    """
    event = run.outcome
    if event == previous or event.value not in EVENT_VALUES:
        return []
    rules = NotificationRule.objects.filter(profile_id=run.profile_id).select_related(
        "destination")
    rows = [Delivery(run=run, event=event.value, target=f"rule:{rule.pk}",
                     destination=rule.destination)
            for rule in rules if event.value in rule.events]
    for sub in RunSubscription.objects.filter(run=run).select_related("user"):
        if sub.user.email:
            rows.append(Delivery(run=run, event=event.value, target=f"user:{sub.user_id}",
                                 email=sub.user.email))
    if not rows:
        return []
    written = []
    for row in rows:
        try:
            with transaction.atomic():  # a savepoint: the run's own writes stay
                row.save(force_insert=True)
        except IntegrityError:
            continue  # another worker (or an earlier sweep) wrote it: it sends it
        written.append(row)
    if written:
        transaction.on_commit(lambda: _enqueue([d.pk for d in written]))
    return written


def _enqueue(pks: list[int]) -> None:
    from runs.notifications.delivery import send_delivery

    for pk in pks:
        try:
            send_delivery.enqueue(pk)
        except Exception:  # the run's own work must not fail because a queue did
            logger.exception("Could not queue notification %s", pk)
