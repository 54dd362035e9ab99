"""Why a run failed, in one line, and the text the history's search reads.

Both are computed when a run's results or final status are stored (runs.sweep), and kept
on the run (Run.failure_summary, Run.search_text), so a page of the history or a search
never parses node results: it reads one column.
"""

from __future__ import annotations

from collections.abc import Iterable

from runs.results import NodeResult, results_from_json

# The Run fields summarise() sets, for save(update_fields=…) and bulk_update.
SUMMARY_FIELDS = ("failure_summary", "search_text")
# How many failed nodes a summary names before "and N more", and how long it may be.
NAMES_SHOWN = 3
SUMMARY_LENGTH = 300
# The search text keeps each node's error to this many characters, and all of it to
# SEARCH_TEXT_LENGTH: enough for names and the opening of every error.
ERROR_LENGTH = 300
SEARCH_TEXT_LENGTH = 8_000


def failure_summary(results, failure_reason: str = "") -> str:
    """"2 of 5 nodes failed: FCT_ORDERS, FCT_REVENUE. invalid identifier 'AMOUNT'" for
    stored results with failed nodes; else Coalesce's failure reason; else ""."""
    nodes = results_from_json(results)
    failed = [node for node in nodes if node.failed]
    if not failed:
        return _shorten(_first_line(failure_reason), SUMMARY_LENGTH)
    names = [node.name or node.node_id or "unnamed node" for node in failed]
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        shown += f" and {len(names) - NAMES_SHOWN} more"
    noun = "node" if len(nodes) == 1 else "nodes"
    text = f"{len(failed)} of {len(nodes)} {noun} failed: {shown}"
    first_error = _first_error(failed) or _first_line(failure_reason)
    if first_error:
        text += f". {first_error}"
    return _shorten(text, SUMMARY_LENGTH)


def search_text(results, failure_reason: str = "") -> str:
    """Node names and error openings and the failure reason, lower case, for the search."""
    parts = [failure_reason]
    for node in results_from_json(results):
        parts += [node.name, node.node_id]
        parts += [error[:ERROR_LENGTH] for error in _errors(node)]
    return " \n".join(p.strip() for p in parts if p and p.strip())[:SEARCH_TEXT_LENGTH].lower()


def summarise(run, failure_reason: str = "") -> None:
    """Set `run`'s failure_summary and search_text from its results (not saved)."""
    run.failure_summary = failure_summary(run.results, failure_reason)
    run.search_text = search_text(run.results, failure_reason)


def _errors(node: NodeResult) -> Iterable[str]:
    if node.error:
        yield node.error
    for stage in node.stages:
        for text in (stage.error_string, stage.error_detail):
            if text and text != node.error:
                yield text


def _first_error(nodes: Iterable[NodeResult]) -> str:
    for node in nodes:
        for error in _errors(node):
            if line := _first_line(error):
                return line
    return ""


def _first_line(text: str) -> str:
    return (text or "").strip().partition("\n")[0].strip()


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
