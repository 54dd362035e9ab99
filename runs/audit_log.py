"""The audit log page's rows: each entry with links to what it names, its details in
words, and for runs the run's one number and outcome.

runs.audit writes and verifies the trail; this module only reads a page of it for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from runs.models import (
    COULD_NOT_START_REASONS,
    AuditEntry,
    EnvironmentProfile,
    Outcome,
    Run,
    outcome_of,
)

# Targets as runs.service and runs.admin write them: "run 9", "profile 1 Demo".
_RUN_TARGET = re.compile(r"run (\d{1,18})\Z")
_PROFILE_TARGET = re.compile(r"profile (\d{1,18})\b")
# Detail keys in words; any other key is shown with its underscores as spaces.
_DETAIL_LABELS = {"fields": "Changed", "field": "Field", "job_id": "Job",
                  "environment_id": "Coalesce environment", "profile": "Environment",
                  "force": "Forced", "reason": "Reason", "fingerprint": "Fingerprint"}


@dataclass
class Link:
    text: str
    url: str


@dataclass
class AuditRow:
    entry: AuditEntry
    target: Link | None  # the run or profile it names, when the viewer may open it
    profile: Link | None  # a run's environment (its runs in the history)
    outcome: Outcome | None
    outcome_reason: str
    details: list[tuple[str, str]]


def rows_for(entries: list[AuditEntry], user) -> list[AuditRow]:
    """The page's rows: two queries at most, whatever the number of entries."""
    run_ids = {int(m.group(1)) for e in entries if (m := _RUN_TARGET.match(e.target))}
    profile_ids = {int(m.group(1)) for e in entries if (m := _PROFILE_TARGET.match(e.target))}
    runs = {}
    if run_ids:
        fields = ("pk", "run_counter", "status", "coalesce_status", "stopped_following_at",
                  "profile_id", "profile__name")
        runs = {values[0]: values for values in Run.objects.visible_to(user)
                .filter(pk__in=run_ids).values_list(*fields)}
    profiles = set()
    if profile_ids:
        profiles = set(EnvironmentProfile.objects.visible_to(user).filter(pk__in=profile_ids)
                       .values_list("pk", flat=True))
    return [_row(entry, runs, profiles) for entry in entries]


def _row(entry: AuditEntry, runs: dict, profiles: set[int]) -> AuditRow:
    target = profile = outcome = None
    reason = ""
    if (match := _RUN_TARGET.match(entry.target)) and int(match.group(1)) in runs:
        pk, counter, status, coalesce_status, stopped, profile_id, name = runs[int(match[1])]
        number = str(counter) if counter is not None else f"#{pk}"
        target = Link(f"Run {number}", reverse("runs:detail", args=[pk]))
        profile = Link(name, _history_of(profile_id))
        outcome = outcome_of(status, coalesce_status, stopped)
        reason = COULD_NOT_START_REASONS.get(status, "")
    elif (match := _PROFILE_TARGET.match(entry.target)) and int(match.group(1)) in profiles:
        target = Link(entry.target, _history_of(int(match.group(1))))
    return AuditRow(entry, target, profile, outcome, reason, details_in_words(entry.details))


def _history_of(profile_id: int) -> str:
    return f"{reverse('runs:list')}?{urlencode({'environment': profile_id})}"


def details_in_words(details: dict) -> list[tuple[str, str]]:
    """("Changed", "Allowed groups, Job ID"), ("Forced", "no"): no Python reprs, and
    nothing for empty values."""
    words = []
    for key, value in (details or {}).items():
        if value in ("", None, [], {}):
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list | tuple):
            text = ", ".join(str(item) for item in value)
        else:
            text = str(value)
        words.append((_DETAIL_LABELS.get(key, key.replace("_", " ").capitalize()), text))
    return words
