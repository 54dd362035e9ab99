"""The form's preview checked against what Coalesce ran (issue: "checked against reality").

When a run starts, the node ids its preview matched are stored (RunPreview). Once the run
has finished and its node results are in, `check_run` compares the two; the run page
shows "Preview matched: 12 nodes" or the differences (templates/runs/_preview_check.html),
and the sweep logs every mismatch with the selectors, so the semantics in
docs/selectors.md can be corrected from real cases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from runs.models import NodeCatalogue, Run, RunPreview
from runs.results import results_from_json

logger = logging.getLogger(__name__)

SHOWN = 20  # names listed per difference; the rest are counted


@dataclass(frozen=True)
class PreviewCheck:
    previewed: int
    ran: int
    not_run: tuple[str, ...]  # previewed, but Coalesce didn't run them (names where known)
    not_previewed: tuple[str, ...]  # run by Coalesce, but not in the preview

    @property
    def matched(self) -> bool:
        return not self.not_run and not self.not_previewed

    def shown(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
        return names[:SHOWN], max(0, len(names) - SHOWN)

    @property
    def not_run_shown(self):
        return self.shown(self.not_run)

    @property
    def not_previewed_shown(self):
        return self.shown(self.not_previewed)


def check_run(run: Run, preview: RunPreview | None = None) -> PreviewCheck | None:
    """None unless the run had a preview, finished (not cancelled) and has node results."""
    if run.coalesce_status not in ("completed", "failed") or not run.results:
        return None
    if preview is None:
        preview = RunPreview.objects.filter(run=run).first()
    if preview is None:
        return None
    ran = {node.node_id: node.name for node in results_from_json(run.results)}
    previewed = set(preview.node_ids)
    missing = previewed - ran.keys()
    names = _names(run, missing) if missing else {}
    return PreviewCheck(
        previewed=len(previewed), ran=len(ran),
        not_run=tuple(sorted(names.get(i, i) for i in missing)),
        not_previewed=tuple(sorted(ran[i] or i for i in ran.keys() - previewed)))


def _names(run: Run, ids: set[str]) -> dict[str, str]:
    rows = NodeCatalogue.objects.filter(profile=run.profile_id).values_list("nodes", flat=True)
    return {row[0]: row[1] for row in (rows.first() or []) if row[0] in ids}


def log_mismatches(runs: Iterable[Run]) -> None:
    """Log (WARNING, logger runs.preview_check) each finished run whose preview differs
    from what Coalesce ran, with its selectors. One query for all of `runs`."""
    runs = {run.pk: run for run in runs}
    if not runs:
        return
    for preview in RunPreview.objects.filter(run__in=list(runs)):
        run = runs[preview.run_id]
        check = check_run(run, preview)
        if check is not None and not check.matched:
            logger.warning(
                "Preview mismatch on run %s (job %r, include %r, exclude %r): previewed %d, "
                "ran %d; not run: %s; not previewed: %s", run.pk, run.job_id,
                run.include_selector, run.exclude_selector, check.previewed, check.ran,
                ", ".join(check.not_run[:SHOWN]), ", ".join(check.not_previewed[:SHOWN]))
