"""Cursors for the statements every poll of a run page runs: the session and the run's
change marker (runs.sessions, runs.live).

On PostgreSQL such a cursor binds its parameters on the server, so that psycopg prepares
the statement on its second execution in a connection (DATABASES' prepare_threshold,
DATABASE_PREPARED_STATEMENTS) and PostgreSQL stops planning it on every poll. Every
other query keeps Django's client-side binding, which never prepares. Elsewhere it is an
ordinary cursor.
"""

from __future__ import annotations


def prepared_cursor(connection):
    """A cursor wrapped as Django wraps its own, so its queries are logged and counted."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)
