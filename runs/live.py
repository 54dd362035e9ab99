"""What a run page's poll needs to know before it renders anything: whether the run
changed since the page's last answer (an ETag), read with one indexed query."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery

from runs.models import Run, RunEvent

# Everything the live fragment shows that can change, besides the timeline (its newest
# entry's id stands for it) and relative times (the minute stands for them).
_CHANGES = ("status", "coalesce_status", "coalesce_started_at", "coalesce_ended_at",
            "stopped_following_at", "results_fetched_at", "answered_at", "run_counter")


@dataclass(frozen=True)
class LiveState:
    etag: str
    active: bool
    watched_until: datetime | None


def live_state(request, pk: int) -> LiveState | None:
    """The run's change marker, if this user may see it (None otherwise): one query on
    the run's primary key, with its newest timeline entry from the (run, id) index."""
    newest_event = RunEvent.objects.filter(run=OuterRef("pk")).order_by("-id").values("id")[:1]
    row = (Run.objects.visible_to(request.user).filter(pk=pk)
           .annotate(newest_event=Subquery(newest_event))
           .values(*_CHANGES, "newest_event", "watched_until").first())
    if row is None:
        return None
    active = Run.lifecycle_is_active(row["status"], row["coalesce_status"],
                                     row["stopped_following_at"])
    marker = "|".join(str(row[name]) for name in (*_CHANGES, "newest_event"))
    marker += f"|{request.user.pk}|{int(time.time() // 60)}"
    return LiveState(etag=hashlib.blake2b(marker.encode(), digest_size=12).hexdigest(),
                     active=active, watched_until=row["watched_until"])
