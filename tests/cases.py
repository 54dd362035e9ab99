"""Test data several test modules share (a support module: test modules import from here,
never from each other)."""

# Every start state with every Coalesce status (and followed or not): the CSV's outcome
# is the words the pages use.
OUTCOME_CASES = [
    ("submitting", "", False, "Queued"),
    ("submitting", "", True, "Outcome unknown"),
    ("unknown", "", False, "Outcome unknown"),
    ("rejected", "", False, "Couldn't start: rejected by Coalesce"),
    ("rate_limited", "", False, "Couldn't start: rate limited"),
    ("unreachable", "", False, "Couldn't start: unreachable"),
    ("not_sent", "", False, "Couldn't start: not sent"),
    ("started", "", False, "Queued"),
    ("started", "waitingToRun", False, "Queued"),
    ("started", "initializing", False, "Running"),
    ("started", "rendering", False, "Running"),
    ("started", "running", False, "Running"),
    ("started", "somethingNew", False, "Running"),
    ("started", "completed", False, "Succeeded"),
    ("started", "failed", False, "Failed"),
    ("started", "canceled", False, "Cancelled"),
    ("started", "running", True, "No longer followed"),
    ("started", "", True, "No longer followed"),
    ("started", "completed", True, "Succeeded"),
]


# A failed run's stored node results: one node that completed, one that failed.
FAILED_RESULTS = [
    {"node_id": "a", "name": "STG_OK", "status": "completed", "stages": [], "error": "",
     "failed_sql": "", "duration_seconds": 1.5, "rows_inserted": 10, "rows_updated": 0,
     "rows_deleted": 0, "has_test_failures": False},
    {"node_id": "b", "name": "FCT_BROKEN", "status": "failed", "stages": [],
     "error": "invalid identifier 'AMOUNT'", "failed_sql": "select amount from x",
     "duration_seconds": 0.4, "rows_inserted": None, "rows_updated": None,
     "rows_deleted": None, "has_test_failures": False},
]
