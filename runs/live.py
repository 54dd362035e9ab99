"""What a run page's poll needs to know before it renders anything: whether the run
changed since the page's last answer (an ETag), read with one indexed query.

The poll is the busiest request of the site (every open run page, every 2 s), so the
query is built with the ORM once per database and kind of user, and then only executed:
building it each time cost more than running it (bench/status.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import Group, Permission, User
from django.db import connections
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils.dateparse import parse_datetime

from runs.models import EnvironmentProfile, Run, RunEvent, lifecycle_is_active
from runs.prepared import prepared_cursor

# Everything the live fragment shows that can change, besides the timeline (its newest
# entry's id stands for it). Relative times ("3 min ago") and the elapsed time are kept
# current by run_live.js, so the clock is not part of the marker.
_CHANGES = ("status", "coalesce_status", "coalesce_started_at", "coalesce_ended_at",
            "stopped_following_at", "results_fetched_at", "answered_at", "run_counter")
_COLUMNS = (*_CHANGES, "newest_event", "watched_until")
# Stand-ins for the user's and the run's ids while the statement is compiled.
_USER, _RUN = -7_000_001, -7_000_002


@dataclass(frozen=True)
class LiveState:
    etag: str
    active: bool
    watched_until: datetime | None


def live_state(request, pk: int) -> LiveState | None:
    """The run's change marker, if this user may see it (None otherwise): ONE query on
    the run's primary key, with its newest timeline entry from the (run, id) index and
    the visibility rule of `Run.objects.visible_to` written as EXISTS terms, so that
    even the permission check costs no query of its own."""
    user = request.user
    connection = connections[Run.objects.db]
    sql, params = _statement(connection, user.is_superuser)
    values = [user.pk if p == _USER else pk if p == _RUN else p for p in params]
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, values)
        found = cursor.fetchone()
    if found is None:
        return None
    row = dict(zip(_COLUMNS, found, strict=True))
    active = lifecycle_is_active(row["status"], row["coalesce_status"],
                                     row["stopped_following_at"])
    marker = "|".join(str(row[name]) for name in (*_CHANGES, "newest_event"))
    marker += f"|{user.pk}"
    return LiveState(etag=hashlib.blake2b(marker.encode(), digest_size=12).hexdigest(),
                     active=active, watched_until=_as_datetime(row["watched_until"]))


_STATEMENTS: dict[tuple[str, bool], tuple[str, tuple]] = {}


def _statement(connection, superuser: bool) -> tuple[str, tuple]:
    key = (connection.alias, superuser)
    if key not in _STATEMENTS:
        newest_event = (RunEvent.objects.filter(run=OuterRef("pk")).order_by("-id")
                        .values("id")[:1])
        query = (Run.objects.filter(_visible(_USER, superuser), pk=_RUN).order_by()
                 .annotate(newest_event=Subquery(newest_event)).values(*_COLUMNS)[:1])
        _STATEMENTS[key] = query.query.sql_with_params()
    return _STATEMENTS[key]


def _visible(user_id: int, superuser: bool) -> Q:
    """`Run.objects.visible_to(user)` as one condition: superusers see every run; so do
    holders of runs.view_run, given to them or to one of their groups; others see the
    runs of the profiles one of their groups may run. (Inactive users never get here:
    the session's user is anonymous for them.) tests/test_run_actions.py checks that it
    agrees with visible_to."""
    if superuser:
        return Q()
    # Through the link tables only, with no join to auth_group or auth_user: PostgreSQL
    # plans this query on every execution, and each join made that slower than the run.
    groups = User.groups.through.objects.filter(user_id=user_id).values("group_id")
    view_run = Permission.objects.filter(content_type__app_label="runs",
                                         codename="view_run").values("id")
    by_user = User.user_permissions.through.objects.filter(user_id=user_id,
                                                           permission_id__in=view_run)
    by_group = Group.permissions.through.objects.filter(group_id__in=groups,
                                                        permission_id__in=view_run)
    allowed = EnvironmentProfile.allowed_groups.through.objects.filter(
        environmentprofile_id=OuterRef("profile_id"), group_id__in=groups)
    return Q(Exists(by_user)) | Q(Exists(by_group)) | Q(Exists(allowed))


def _as_datetime(value) -> datetime | None:
    """A raw cursor gives SQLite's datetimes as text (naive UTC); PostgreSQL's as is."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
