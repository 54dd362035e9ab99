"""The admin's profile page in a real browser, at 1366x900 and 390x844: only the selected
auth type's fields (switching with the static script), the key status line, axe-clean."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from runs.private_keys import normalise_private_key
from tests.e2e.conftest import check_page
from tests.factories import make_profile, pem_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_profile_page_shows_one_auth_type_s_fields(new_page, log_in, admin_user, rsa_key,
                                                      viewport):
    profile = make_profile(name="Keyed", snowflake_auth_type="KeyPair",
                           snowflake_username="SVC_LOADER",
                           private_key=normalise_private_key(pem_of(rsa_key)))
    page: Page = new_page(viewport)
    log_in(page, "admin")
    page.goto(f"/admin/runs/environmentprofile/{profile.pk}/change/")

    expect(page.get_by_label("Private key (PEM)")).to_be_visible()
    expect(page.get_by_label("Snowflake password")).to_be_hidden()
    expect(page.get_by_label("In Snowflake, run:")).to_have_value(
        f"ALTER USER SVC_LOADER SET RSA_PUBLIC_KEY='{profile.private_key_public}';")
    check_page(page)

    page.get_by_label("Snowflake auth type").select_option("Basic")
    expect(page.get_by_label("Snowflake password")).to_be_visible()
    expect(page.get_by_label("Private key (PEM)")).to_be_hidden()
    page.get_by_label("Snowflake auth type").select_option("OAuth")
    expect(page.get_by_label("Snowflake password")).to_be_hidden()
    check_page(page)
