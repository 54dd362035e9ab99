"""The node catalogue of each profile: refreshed from Coalesce by the worker, read by the
run form's picker and preview (docs/selectors.md).

Reading never calls Coalesce and never blocks a run start: a missing or stale list only
means the form shows less. `catalogue_for(profile)` builds the selector Catalogue once per
refresh and keeps it in this process, so a preview costs the evaluation alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Lock

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runs.coalesce import CoalesceError, client_for
from runs.models import EnvironmentProfile, NodeCatalogue
from runs.selectors import Catalogue, NodeRecord

logger = logging.getLogger(__name__)

# A queued refresh that never ran (no worker) may be queued again after this long.
REQUEST_GRACE = timedelta(minutes=2)
_built: dict[int, tuple[datetime, Catalogue]] = {}
_built_lock = Lock()


@dataclass(frozen=True)
class CatalogueStatus:
    """What the form says about the node list: "Node list refreshed 12 min ago"."""

    refreshed_at: datetime | None
    node_count: int
    refreshing: bool
    last_error: str
    stale: bool

    @property
    def missing(self) -> bool:
        return self.refreshed_at is None


def status_of(profile: EnvironmentProfile) -> CatalogueStatus:
    row = (NodeCatalogue.objects.filter(profile=profile)
           .values("refreshed_at", "node_count", "requested_at", "last_attempt_at",
                   "last_error").first()) or {}
    refreshed, requested = row.get("refreshed_at"), row.get("requested_at")
    attempted = row.get("last_attempt_at")
    refreshing = bool(requested and (attempted is None or attempted < requested)
                      and timezone.now() - requested < REQUEST_GRACE)
    return CatalogueStatus(refreshed_at=refreshed, node_count=row.get("node_count", 0),
                           refreshing=refreshing, last_error=row.get("last_error", ""),
                           stale=refreshed is None or timezone.now() - refreshed > max_age())


def max_age() -> timedelta:
    return timedelta(seconds=settings.NODE_CATALOGUE_MAX_AGE_SECONDS)


def catalogue_for(profile: EnvironmentProfile) -> tuple[Catalogue | None, datetime | None]:
    """(the built Catalogue, when it was refreshed), or (None, None) without a list.
    One small query to learn the refresh time; the list is read and built only when this
    process hasn't built that refresh yet."""
    refreshed = (NodeCatalogue.objects.filter(profile=profile, refreshed_at__isnull=False)
                 .values_list("refreshed_at", flat=True).first())
    if refreshed is None:
        return None, None
    with _built_lock:
        cached = _built.get(profile.pk)
    if cached and cached[0] == refreshed:
        return cached[1], refreshed
    rows = NodeCatalogue.objects.filter(profile=profile).values_list("nodes", flat=True).first()
    catalogue = Catalogue.from_records(_records(rows or []))
    with _built_lock:
        _built[profile.pk] = (refreshed, catalogue)
    return catalogue, refreshed


def _records(rows: list) -> list[NodeRecord]:
    return [NodeRecord(r[0], r[1], r[2], r[3], tuple(tuple(p) for p in r[4])) for r in rows]


def request_refresh(profile: EnvironmentProfile, *, force: bool = False) -> bool:
    """Queue a refresh when `force` (the Refresh button) or the list is missing or older
    than NODE_CATALOGUE_MAX_AGE_SECONDS, unless one is already queued. Returns whether one
    was queued. Never raises for a queueing problem: the form works without the list."""
    from runs import tasks  # tasks imports the sweep, which is heavier than a page needs

    now = timezone.now()
    try:
        with transaction.atomic():
            row, _ = NodeCatalogue.objects.select_for_update().get_or_create(profile=profile)
            queued = row.requested_at and now - row.requested_at < REQUEST_GRACE and (
                row.last_attempt_at is None or row.last_attempt_at < row.requested_at)
            fresh = row.refreshed_at and now - row.refreshed_at <= max_age()
            if queued or (fresh and not force):
                return False
            row.requested_at = now
            row.save(update_fields=["requested_at"])
        tasks.refresh_node_catalogue.enqueue(profile.pk)
    except Exception:  # a page must not fail because the worker's queue did
        logger.exception("Could not queue a node list refresh for profile %s", profile.pk)
        return False
    return True


def refresh(profile: EnvironmentProfile) -> str:
    """Fetch the node list from Coalesce and store it; on failure keep the last good list
    and record the error. Returns a one-line summary for the worker's log."""
    started = timezone.now()
    rows: list[list] = []
    try:
        with client_for(profile) as client:
            for page in client.list_nodes(profile.environment_id):
                rows.extend([r.id, r.name, r.location, r.node_type,
                             [list(p) for p in r.depends_on]] for r in page)
    except CoalesceError as exc:
        NodeCatalogue.objects.update_or_create(
            profile=profile, defaults={"last_attempt_at": started, "last_error": exc.message})
        logger.warning("Node list of %s not refreshed: %s", profile, exc.message)
        return f"node list of {profile}: not refreshed ({exc.kind})"
    NodeCatalogue.objects.update_or_create(profile=profile, defaults={
        "nodes": rows, "node_count": len(rows), "refreshed_at": timezone.now(),
        "last_attempt_at": started, "last_error": ""})
    return f"node list of {profile}: {len(rows)} nodes"
