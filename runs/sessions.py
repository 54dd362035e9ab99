"""Django's database sessions, with the lookup every request makes written once.

The stock store builds `Session.objects.get(session_key=..., expire_date__gt=now)` with
the ORM on every request; on the run page's poll, the busiest request of the site, that
cost more than the query itself (bench/status.py). This store runs the same statement,
fixed, through a prepared cursor (runs.prepared). Everything else is Django's: saving,
expiry, cycling the key on login and flushing it on logout.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from runs.prepared import prepared_cursor


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        if not self.session_key:  # Django's store validates the key; none means no session
            self._session_key = None
            return None
        connection = connections[router.db_for_read(self.model)]
        with prepared_cursor(connection) as cursor:
            cursor.execute(_statement(connection, self.model),
                           [self.session_key,
                            connection.ops.adapt_datetimefield_value(timezone.now())])
            found = cursor.fetchone()
        if found is None:
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=found[0])


def _statement(connection, model) -> str:
    name = connection.ops.quote_name
    return (f"SELECT {name('session_data')} FROM {name(model._meta.db_table)} "
            f"WHERE {name('session_key')} = %s AND {name('expire_date')} > %s")
