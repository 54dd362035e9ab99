"""Every page keeps to the Content-Security-Policy (no inline script anywhere): the app's
pages and the Django admin's, with their scripts running. The `csp_violations` fixture
fails the test on any `securitypolicyviolation` a page reports."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_admin_runs_under_the_policy(page, log_in, admin_user, demo_profile):
    run = make_run(demo_profile, admin_user, run_counter=1, coalesce_status="completed")
    log_in(page, "admin")
    for url in ("/admin/", "/admin/runs/environmentprofile/",
                f"/admin/runs/environmentprofile/{demo_profile.pk}/change/",
                "/admin/runs/environmentprofile/add/", "/admin/runs/run/",
                f"/admin/runs/run/{run.pk}/change/", "/admin/auth/user/add/",
                "/admin/auth/group/add/", "/admin/axes/accessattempt/",
                "/admin/runs/auditentry/"):
        response = page.goto(url)
        assert response.status == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "unsafe-inline" not in response.headers["content-security-policy"]
    # The admin's own scripts ran: the sidebar toggle and the filter inputs are theirs.
    page.goto("/admin/auth/group/add/")
    expect(page.locator("#id_permissions_input")).to_be_visible()


def test_the_app_pages_run_under_the_policy(page, log_in, alice, demo_profile):
    run = make_run(demo_profile, alice, run_counter=1, coalesce_status="running")
    log_in(page, "alice")
    for url in ("/", "/runs/new/", f"/runs/{run.pk}/", "/history/charts/"):
        response = page.goto(url)
        assert response.status == 200, url
        assert "no-store" in response.headers["cache-control"]
    page.goto("/runs/new/")
    page.get_by_label("Environment", exact=True).select_option(str(demo_profile.pk))
    page.wait_for_load_state("networkidle")


def test_pat_expiry_in_the_choices_fits_a_phone(new_page, log_in, alice, analysts):
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import EnvironmentProfile
    from tests.factories import make_profile

    make_profile(name="Warehouse", snowflake_auth_type=EnvironmentProfile.AuthType.BASIC,
                 snowflake_username="SVC", snowflake_password="pat-1234",
                 snowflake_password_is_pat=True,
                 snowflake_pat_expires_on=timezone.localdate() + timedelta(days=9),
                 groups=[analysts])
    page = new_page("phone")
    log_in(page, "alice")
    for url in ("/", "/runs/new/"):
        page.goto(url)
        expect(page.get_by_label("Environment", exact=True)).to_contain_text(
            "⚠ Warehouse (PAT expires in 9 days)")
        # Not check_page: the history's table has an axe finding of its own, and the run
        # form is wider than a phone without any PAT (both reported to their owners).
        width = page.evaluate(
            "document.querySelector('select[name=environment]').getBoundingClientRect().right")
        assert width <= 390, f"the environment choice on {url} ends at {width} px on a phone"
