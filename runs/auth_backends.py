"""The password backend, with the user lookup every request makes written once.

Django's backends build `User.objects.get(pk=...)` with the ORM on every request, to turn
the session's user id into a user; on the run page's poll, the busiest request of the
site, building it cost more than running it (bench/status.py). `load_user` runs the same
statement, compiled once per process and database, through a prepared cursor
(runs.prepared), and builds the user as the ORM would. Logging in, passwords and
permissions are Django's, unchanged. The single sign-on backend (runs.sso) uses it too.
"""

from __future__ import annotations

from django.contrib.auth import backends, get_user_model
from django.core.exceptions import ValidationError
from django.db import connections, router

from runs.prepared import prepared_cursor

_SENTINEL = -7_000_003  # stands in for the user's id while the statement is compiled
_COMPILED: dict[str, tuple] = {}


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        user = load_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


def load_user(user_id):
    """The user with this primary key, or None (also for an id of the wrong shape)."""
    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(user_id)
    except ValidationError:
        return None
    alias = router.db_for_read(model)
    connection = connections[alias]
    sql, params, converters, names = _compiled(model, alias)
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, [pk if p == _SENTINEL else p for p in params])
        row = cursor.fetchone()
    if row is None:
        return None
    # What the ORM does with each value (e.g. SQLite's text timestamps and integer
    # booleans), with this thread's connection.
    values = list(row)
    for position, (functions, expression) in converters.items():
        for convert in functions:
            values[position] = convert(values[position], expression, connection)
    return model.from_db(alias, names, values)


def _compiled(model, alias: str) -> tuple:
    """(SQL, parameters, converters by column, field names), built once per database."""
    if alias not in _COMPILED:
        compiler = model._default_manager.filter(pk=_SENTINEL).query.get_compiler(alias)
        sql, params = compiler.as_sql()
        columns = [column for column, _, _ in compiler.select]
        _COMPILED[alias] = (sql, params, compiler.get_converters(columns),
                            [column.target.attname for column in columns])
    return _COMPILED[alias]
