"""403, 404 and 500 use the site's layout and navigation; the navigation offers "Start a
refresh run" only to people who may start one."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import path, reverse


def boom(request):
    raise RuntimeError("crash for the test")


urlpatterns = [path("boom/", boom)]

pytestmark = pytest.mark.django_db


def test_a_404_has_the_site_s_layout_and_navigation(alice_client, profile):
    response = alice_client.get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert '<nav aria-label="Main">' in page and "<h1>Nothing here</h1>" in page
    assert "Log out alice" in page and "Start a refresh run" in page


def test_a_403_has_the_site_s_layout_and_navigation(client, bob, alice, profile):
    client.force_login(bob)
    response = client.get(reverse("runs:cancel", args=[1]))  # bob may not cancel runs
    page = response.content.decode()
    assert response.status_code == 403
    assert '<nav aria-label="Main">' in page and "You can't do that here" in page
    # bob may run nothing, so the navigation doesn't offer to start one.
    assert "Start a refresh run" not in page


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_500_has_the_site_s_layout(db):
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    page = response.content.decode()
    assert response.status_code == 500
    assert '<header class="site-header">' in page and "Something went wrong" in page


def test_only_who_may_start_a_run_sees_the_link(client, alice, bob, carol, profile):
    for user, offered in ((alice, True), (bob, False), (carol, False)):
        client.force_login(user)
        page = client.get(reverse("runs:list")).content.decode()
        nav = page[page.index('<nav aria-label="Main">'):page.index("</nav>")]
        assert ("Start a refresh run</a>" in nav) == offered, user
