"""What the run form shows around its fields: the node list's status, the node picker's
matches, the preview of what the selectors refresh, presets and job suggestions.

Everything here reads the database only (the cached node list, past runs, presets); a
missing or stale node list means less help on the page, never a blocked start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from runs import catalogue, selectors
from runs.models import EnvironmentProfile, KnownJob, Preset, Run
from runs.selectors import Catalogue, Node, Preview, SelectorError

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 20
PREVIEW_LIMIT = 50
JOB_SUGGESTIONS = 20


@dataclass(frozen=True)
class SelectorPreview:
    """The preview box: the result, or why there is none."""

    preview: Preview | None = None
    error: SelectorError | None = None
    total: int | None = None  # nodes in the list, for "Refreshes all N nodes"
    refreshed_at: datetime | None = None
    job: bool = False  # a job ID is given: Coalesce runs the job's own selection
    job_id: str = ""
    # A job ID and no selectors: the job's selectors as last checked, which the preview
    # is of. None with `job` set: they aren't known, so there is no preview.
    known_job: KnownJob | None = None
    no_catalogue: bool = False

    @property
    def groups(self):
        if self.preview is None or not self.preview.known:
            return None
        return self.preview.by_location(PREVIEW_LIMIT)

    @property
    def error_caret(self) -> str:
        return self.error.caret() if self.error else ""


def preview_for(profile: EnvironmentProfile | None, include: str, exclude: str,
                job_id: str = "") -> SelectorPreview:
    if profile is None:
        return SelectorPreview(no_catalogue=True)
    if job_id.strip() and not include.strip() and not exclude.strip():
        return _job_preview(profile, job_id.strip())
    built, refreshed = _catalogue(profile)
    if built is None:
        return SelectorPreview(no_catalogue=True)
    try:
        result = selectors.preview(built, include, exclude)
    except SelectorError as exc:
        return SelectorPreview(error=exc, total=len(built), refreshed_at=refreshed)
    return SelectorPreview(preview=result, total=len(built), refreshed_at=refreshed,
                           job=bool(job_id.strip()))


def _job_preview(profile: EnvironmentProfile, job_id: str) -> SelectorPreview:
    """What a run of the job refreshes, from its selectors as the job check last stored
    them: never a call to Coalesce, and no guess when the job was never checked."""
    known = KnownJob.objects.filter(profile=profile, job_id=job_id).first()
    if known is None:
        return SelectorPreview(job=True, job_id=job_id)
    built, refreshed = _catalogue(profile)
    if built is None:
        return SelectorPreview(no_catalogue=True)
    facts = {"total": len(built), "refreshed_at": refreshed, "job_id": job_id,
             "known_job": known}
    try:
        result = selectors.preview(built, known.include_selector, known.exclude_selector)
    except SelectorError as exc:
        return SelectorPreview(error=exc, **facts)
    return SelectorPreview(preview=result, **facts)


def stored_preview(profile: EnvironmentProfile, include: str, exclude: str,
                   job_id: str) -> dict:
    """The preview to keep with a run being started: {} when there is nothing certain to
    keep (no node list, a job whose selectors aren't known, a job with selectors of the
    run's own, a subgraph term, a selector the preview can't read)."""
    if job_id and (include or exclude):
        return {}  # how Coalesce combines a job with selectors is not documented
    try:
        found = preview_for(profile, include, exclude, job_id)
    except Exception:  # never let the preview stop a start
        logger.exception("Preview failed while starting a run on %s", profile)
        return {}
    if found.preview is None or not found.preview.known:
        return {}
    return {"preview_node_ids": found.preview.node_ids,
            "catalogue_refreshed_at": found.refreshed_at}


def search_nodes(profile: EnvironmentProfile | None, query: str) -> list[Node] | None:
    """Up to SEARCH_LIMIT nodes whose name, location or type contains `query` (any case),
    names that start with it first. None when there is no node list to search."""
    if profile is None:
        return None
    built, _ = _catalogue(profile)
    if built is None:
        return None
    needle = query.strip().lower()
    if not needle:
        return []
    first, rest = [], []
    for node in built.nodes:
        name = node.name.lower()
        if name.startswith(needle):
            first.append(node)
            if len(first) >= SEARCH_LIMIT:
                break
        elif len(rest) < SEARCH_LIMIT and (needle in name or needle in node.location.lower()
                                           or needle in node.node_type.lower()):
            rest.append(node)
    return (first + rest)[:SEARCH_LIMIT]


def node_by_id(profile: EnvironmentProfile, node_id: str) -> Node | None:
    built, _ = _catalogue(profile)
    return built.by_id.get(node_id) if built is not None else None


def _catalogue(profile: EnvironmentProfile) -> tuple[Catalogue | None, datetime | None]:
    try:
        return catalogue.catalogue_for(profile)
    except Exception:  # a damaged list must not break the form
        logger.exception("Node list of %s could not be read", profile)
        return None, None


def presets_for(user, profile: EnvironmentProfile | None):
    if profile is None:
        return Preset.objects.none()
    return Preset.usable_by(user, profile).select_related("owner")


def job_suggestions(profile: EnvironmentProfile | None) -> list[str]:
    """Job IDs already used on this profile, most recent first (one indexed query)."""
    if profile is None:
        return []
    recent = (Run.objects.filter(profile=profile).exclude(job_id="")
              .order_by("-created_at", "-id").values_list("job_id", flat=True)[:500])
    return list(dict.fromkeys(recent))[:JOB_SUGGESTIONS]
