"""Schemathesis against the served OpenAPI description, with a real token: no server
error and no answer that breaks the description, within 90 seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs.models import ApiToken
from tests.api_helpers import make_token
from tests.factories import grant, make_run, sim_profile

# Enough examples to try every operation with odd input, few enough for CI's budget
# (about 40 s on PostgreSQL here, most of it the coverage phase).
MAX_EXAMPLES = 12
BUDGET_SECONDS = 90


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_keeps_its_description(live_server, simulator, alice, analysts, tmp_path,
                                       settings):
    settings.API_REQUESTS_PER_MINUTE = 100_000  # the throttle has its own test
    profile = sim_profile(simulator.base_url, "env-fuzz", groups=[analysts],
                          organization_id="org-1")
    grant(alice, "force_run", "cancel_run")
    # Run 1 (the description's example id) failed, so a rerun of it reaches Coalesce.
    make_run(profile, alice, run_counter=1, coalesce_status="failed")
    make_run(profile, alice, run_counter=2, coalesce_status="running")
    token = make_token(alice, scopes=[ApiToken.Scope.READ, ApiToken.Scope.START])
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{live_server.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                    "content_type_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", "12",
        "--request-timeout", "20", "--generation-allow-x00", "false",
        "--phases", "examples,coverage,fuzzing,stateful",
    ]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUDGET_SECONDS,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1",
                                             "SCHEMATHESIS_HOOKS": ""})
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert took <= BUDGET_SECONDS
    assert "Rate limited" not in done.stdout
