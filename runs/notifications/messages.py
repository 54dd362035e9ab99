"""What each destination receives for an event: the same facts in three shapes."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from runs.models import Run
from runs.results import results_from_json

SCHEMA_VERSION = 1


def run_url(run: Run) -> str:
    return f"{settings.SITE_URL}{reverse('runs:detail', args=[run.pk])}"


def failed_nodes(run: Run) -> list[dict]:
    return [{"name": n.name, "error": n.error} for n in results_from_json(run.results)
            if n.failed]


def facts(run: Run, event: str) -> dict:
    """The webhook body (docs/notification-webhook.schema.json describes it)."""
    outcome = run.outcome
    return {
        "schema_version": SCHEMA_VERSION,
        "event": event,
        "run": {
            "id": run.pk, "url": run_url(run), "outcome": outcome.value,
            "outcome_label": outcome.label, "environment": run.profile.name,
            "environment_id": run.environment_id, "started_by": run.created_by.get_username(),
            "via_token": run.via_token_name,
            "created_at": run.created_at.isoformat(), "run_counter": run.run_counter,
            "job_id": run.job_id, "coalesce_status": run.coalesce_status,
            "coalesce_started_at": _iso(run.coalesce_started_at),
            "coalesce_ended_at": _iso(run.coalesce_ended_at),
            "error_message": run.error_message, "failed_nodes": failed_nodes(run),
        },
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def subject(run: Run) -> str:
    return f"Run {run.pk} on {run.profile.name}: {run.outcome.label}"


def text(run: Run) -> str:
    """The plain-text body of an email."""
    lines = [subject(run), "",
             f"Environment: {run.profile.name} (environment ID {run.environment_id})",
             f"Started by {run.created_by.get_username()} at "
             f"{run.created_at:%Y-%m-%d %H:%M} UTC"]
    if run.via_token_name:
        lines[-1] += f" via API token {run.via_token_name}"
    if run.error_message:
        lines += ["", run.error_message]
    nodes = failed_nodes(run)
    if nodes:
        lines += ["", "Failed nodes:"] + [f"- {n['name']}" for n in nodes]
        lines += ["", f"First error ({nodes[0]['name']}):", nodes[0]["error"]]
    return "\n".join([*lines, "", run_url(run), ""])


def slack(run: Run) -> dict:
    """A Slack incoming-webhook message: the outcome, where, who and when, the failed
    nodes with the first error, and the link."""
    started = f"{run.created_at:%Y-%m-%d %H:%M} UTC"
    who = run.created_by.get_username()
    if run.via_token_name:
        who += f" via API token {run.via_token_name}"
    lines = [f"*<{run_url(run)}|{subject(run)}>*",
             f"Environment *{run.profile.name}* · started by {who} at {started}"]
    nodes = failed_nodes(run)
    if nodes:
        lines.append("Failed nodes: " + ", ".join(n["name"] for n in nodes))
        lines.append(f"First error ({nodes[0]['name']}): ```{nodes[0]['error'][:1500]}```")
    elif run.error_message:
        lines.append(run.error_message)
    return {"text": subject(run),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}
