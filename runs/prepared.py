"""Cursors for the statements every poll of a run page runs: the session and the run's
change marker (runs.sessions, runs.live).

On PostgreSQL such a cursor binds its parameters on the server, so that psycopg prepares
the statement on its second execution in a connection (DATABASES' prepare_threshold,
DATABASE_PREPARED_STATEMENTS) and PostgreSQL stops planning it on every poll. Every
other query keeps Django's client-side binding, which never prepares. Elsewhere it is an
ordinary cursor.
"""

from __future__ import annotations

from django.db.backends.utils import CursorDebugWrapper


def prepared_cursor(connection):
    """A cursor wrapped as Django wraps its own, so its queries are logged and counted."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return _Logged(raw, connection)
    return connection.make_cursor(raw)


class _Logged(CursorDebugWrapper):
    """Logs the statement with its parameters written in, as Django logs its own: psycopg
    keeps no text of a statement it binds on the server."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return self.cursor.execute(sql, params)
