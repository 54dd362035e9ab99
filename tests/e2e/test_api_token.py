"""A person makes an API token in the browser; a CI script uses it to start a run on the
simulator and waits for the outcome; the run page says it came "via API token"."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from runs.models import Run
from tests.e2e.conftest import check_page
from tests.e2e.support import simulator_options  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ci-start-run"


def make_token_in_the_browser(page: Page, log_in, name: str) -> str:
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Start, rerun and cancel runs (runs:start)").check()
    page.get_by_role("button", name="Make token").click()
    expect(page.get_by_text("it is shown only this once")).to_be_visible()
    check_page(page)
    token = page.get_by_role("textbox", name="Token").input_value()
    assert re.fullmatch(r"crd_[A-Za-z0-9_-]{43}", token)
    page.reload()  # a GET: the token is gone for good
    expect(page.get_by_role("textbox", name="Token")).to_have_count(0)
    expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
    return token


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq"))
                    and os.environ.get("REQUIRE_BROWSER_TESTS", "") != "true",
                    reason="the CI script needs curl and jq (.ci/run installs them)")
def test_a_ci_script_starts_a_run_with_a_token_and_waits(page: Page, log_in, alice,
                                                         demo_profile, live_server, sweeper):  # noqa: F811
    token = make_token_in_the_browser(page, log_in, "nightly CI")
    env = {"PATH": os.environ["PATH"], "DASHBOARD_URL": live_server.url,
           "DASHBOARD_TOKEN": token, "POLL_SECONDS": "1", "CI_JOB_ID": "build-1"}
    done = subprocess.run([str(SCRIPT), str(demo_profile.pk), "5"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    run = Run.objects.get()
    assert f"Started run {run.pk}" in done.stdout
    assert done.stdout.strip().endswith(f"Run {run.pk}: Succeeded")

    page.goto(run.get_absolute_url())
    expect(page.get_by_text("via API token nightly CI")).to_be_visible()
    page.goto("/settings/tokens/")
    last_used = page.get_by_role("row", name=re.compile("nightly CI")).locator("td").nth(5)
    expect(last_used).not_to_have_text("Never")
