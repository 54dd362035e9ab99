"""One way to write a time and a duration, on every page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from runs import time_format

NOW = datetime(2026, 11, 30, 14, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (252, "4 min 12 s"), (3600 + 300, "1 h 05 min"),
    (50 * 3600, "2 d 2 h"), (-3, ""),
])
def test_durations_read_in_plain_words(seconds, text):
    assert time_format.duration(timedelta(seconds=seconds)) == text
    assert time_format.duration(seconds) == text


def test_a_time_shows_its_date_and_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert time_format.when(NOW) == "2026-11-30 15:05 CET"


@pytest.mark.parametrize(("before", "text"), [
    (timedelta(seconds=20), "just now"), (timedelta(minutes=3), "3 min ago"),
    (timedelta(hours=5), "5 h ago"), (timedelta(days=3), "3 days ago"),
])
def test_relative_times(before, text):
    assert time_format.ago(NOW - before, now=NOW) == text


def test_the_template_filter_gives_a_machine_readable_time(settings):
    settings.TIME_ZONE = "UTC"
    html = Template("{% load runs_format %}{{ t|when_html }}").render(Context({"t": NOW}))
    assert html.startswith('<time datetime="2026-11-30T14:05:30+00:00">2026-11-30 14:05 UTC</time>')
