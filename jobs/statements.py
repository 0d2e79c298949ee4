"""Statements on the job table made once per process, for the paths every job takes: add, claim, finish.

The ORM's SQL compiler costs more than these short statements themselves (about 0.13 ms of the
0.35 ms an add took on SQLite; 0.3 ms of a completion). Here each shape of statement is built once,
and every value is still converted by its field exactly as the ORM converts it (pre_save and
get_db_prep_save going in, the field's and the backend's converters coming out). Like
bulk_create() and update(), they send no model signals.

On PostgreSQL the server, too, parses and plans each of them once per connection: they are
prepared statements (see _cursor), unless JOBS["PREPARED_STATEMENTS"] is off.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Field

from . import conf
from .models import Job


def database() -> Any:
    """The connection that writes jobs (the router's for Job), itself, not the per-context proxy: a bulk add looks it up ~27 × n times."""
    return connections[router.db_for_write(Job)]


def _cursor(db: Any) -> Any:
    """A cursor of `db` for these statements, through Django's cursor wrapper (its execute wrappers, errors and logging).

    On PostgreSQL (psycopg 3), values are bound by the server and a statement is prepared the
    second time a connection runs it (psycopg keeps it): the server no longer parses and plans the
    add, the claim and the completion at every job, and psycopg no longer quotes every value into
    the SQL. Django's own queries are untouched: the project's OPTIONS decide for them (Django's
    default: bound in the client, never prepared, which poolers in transaction mode need). Behind
    a pooler that does not keep prepared statements, turn JOBS["PREPARED_STATEMENTS"] off.
    """
    if db.vendor != "postgresql" or not conf.get("PREPARED_STATEMENTS") or not _psycopg3():
        return db.cursor()
    # What db.cursor() does, with a cursor of the class below made as Django's create_cursor makes
    # one. Not by swapping the connection's cursor_factory: another thread sharing the connection
    # would get it.
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(_preparing_cursor(db))


@functools.cache
def _psycopg3() -> bool:
    """Whether Django talks to PostgreSQL through psycopg 3 (psycopg2 has no prepared statements of its own)."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _preparing_cursor(db: Any) -> Any:
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    cursor = _preparing_cursor_class()(db.connection)
    if db.timezone != db.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
        register_tzloader(db.timezone, cursor)
    return cursor


@functools.cache
def _preparing_cursor_class() -> type:
    import psycopg
    from django.db.backends.postgresql.base import CursorMixin

    class PreparingCursor(CursorMixin, psycopg.Cursor):
        """Server-side binding; a statement is prepared (named on the server) the second time its connection runs it.

        The second, not the first: preparing costs a round trip, lost on a connection that runs a
        statement once (a web process without DATABASE_CONN_MAX_AGE, a lock renewal).
        """

        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
            with self._preparing():
                try:
                    return super().execute(query, params, binary=binary)
                except psycopg.errors.FeatureNotSupported:
                    # A migration changed the type of a column the statement returns ("cached
                    # plan must not change result type"), and the server refuses the prepared
                    # statement until it is prepared again. In a transaction, the rollback makes
                    # psycopg forget what it prepared; outside one (a worker's claim), forget it
                    # here (psycopg sees the DEALLOCATE ALL) and run the statement once more.
                    if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        raise
                    super().execute("DEALLOCATE ALL", prepare=False)
                    return super().execute(query, params, binary=binary)

        def executemany(self, query: Any, params_seq: Any, *, returning: bool = False) -> None:
            with self._preparing():
                super().executemany(query, params_seq, returning=returning)

        @contextmanager
        def _preparing(self) -> Iterator[None]:
            # For the length of one call: the connection's own threshold (Django: None, never)
            # holds for every other query, and psycopg counts and keeps only these statements.
            connection = self.connection
            threshold, connection.prepare_threshold = connection.prepare_threshold, 1
            try:
                yield
            finally:
                connection.prepare_threshold = threshold

        def _send_query_prepared(self, name: bytes, pgq: Any, *, binary: bool | None = None) -> None:
            # Keep the query as an unprepared one does, so Django's debug log (and
            # CaptureQueriesContext) shows the SQL instead of None.
            self._query = pgq
            super()._send_query_prepared(name, pgq, binary=binary)

    return PreparingCursor


@functools.cache
def _fields() -> tuple[Field, ...]:
    return tuple(Job._meta.concrete_fields)


def _field(name: str) -> Field:
    return Job._meta.pk if name == "pk" else Job._meta.get_field(name)


def returns_rows() -> bool:
    """Whether this database can return the rows an UPDATE changed (PostgreSQL; SQLite 3.35 and newer)."""
    db = database()
    return db.vendor == "postgresql" or (db.vendor == "sqlite" and db.features.can_return_rows_from_update)


def insert(jobs: list[Job]) -> None:
    """INSERT new job rows, one statement run for each (executemany), as bulk_create would."""
    db = database()
    params = [_row(db, job) for job in jobs]
    # As the ORM does: an error inside an atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(db.alias), _cursor(db) as cursor:
        if len(params) == 1:
            cursor.execute(_insert_sql(db.alias, False), params[0])
        else:
            cursor.executemany(_insert_sql(db.alias, False), params)
    _stored(db, jobs)


def insert_new(job: Job) -> bool:
    """INSERT one new job row unless its id is taken (a unique key): False then, and nothing written.

    One statement and no savepoint: a duplicate leaves the caller's transaction usable, and
    outside one the INSERT commits by itself (on PostgreSQL one round trip instead of BEGIN,
    INSERT and COMMIT).
    """
    db = database()
    with transaction.mark_for_rollback_on_error(db.alias), _cursor(db) as cursor:
        cursor.execute(_insert_sql(db.alias, True), _row(db, job))
        inserted = cursor.rowcount == 1
    if inserted:
        _stored(db, [job])
    return inserted


def _row(db: Any, job: Job) -> list[Any]:
    return [field.get_db_prep_save(field.pre_save(job, True), db) for field in _fields()]


def _stored(db: Any, jobs: list[Job]) -> None:
    for job in jobs:
        job._state.adding = False
        job._state.db = db.alias


def update(values: Mapping[str, Any], *, where: Mapping[str, Any]) -> int:
    """UPDATE the rows whose fields equal `where` (no None there) to `values`; return how many changed."""
    db = database()
    with transaction.mark_for_rollback_on_error(db.alias), _cursor(db) as cursor:
        cursor.execute(_update_sql(db.alias, tuple(values), tuple(where), False), _params(db, values, where))
        return cursor.rowcount


def update_returning(values: Mapping[str, Any], *, where: Mapping[str, Any]) -> list[Job]:
    """update(), returning the changed rows as Jobs in one statement; only where returns_rows()."""
    db = database()
    with transaction.mark_for_rollback_on_error(db.alias), _cursor(db) as cursor:
        cursor.execute(_update_sql(db.alias, tuple(values), tuple(where), True), _params(db, values, where))
        rows = cursor.fetchall()
    return [_load(db, row) for row in rows]


def _params(db: Any, values: Mapping[str, Any], where: Mapping[str, Any]) -> list[Any]:
    params = [_field(name).get_db_prep_save(value, db) for name, value in values.items()]
    params += [_field(name).get_db_prep_value(value, db, prepared=False) for name, value in where.items()]
    return params


def _load(db: Any, row: Iterable[Any]) -> Job:
    values = list(row)
    for position, converters, column in _converters(db.alias):
        value = values[position]
        for convert in converters:
            value = convert(value, column, db)
        values[position] = value
    return Job.from_db(db.alias, None, values)


@functools.cache
def _converters(alias: str) -> tuple[tuple[int, tuple[Any, ...], Any], ...]:
    """What turns each column of a row, in _fields() order, into its Python value (as the SQL compiler does)."""
    db = connections[alias]
    found = []
    for position, field in enumerate(_fields()):
        column = field.get_col(Job._meta.db_table)
        converters = (*db.ops.get_db_converters(column), *column.get_db_converters(db))
        if converters:
            found.append((position, converters, column))
    return tuple(found)


def _quote(alias: str, name: str) -> str:
    return connections[alias].ops.quote_name(name)


@functools.cache
def _insert_sql(alias: str, skip_taken: bool) -> str:
    names = ", ".join(_quote(alias, field.column) for field in _fields())
    placeholders = ", ".join(["%s"] * len(_fields()))
    sql = f"INSERT INTO {_quote(alias, Job._meta.db_table)} ({names}) VALUES ({placeholders})"
    return sql + " ON CONFLICT DO NOTHING" if skip_taken else sql


@functools.cache
def _update_sql(alias: str, values: tuple[str, ...], where: tuple[str, ...], returning: bool) -> str:
    sets = ", ".join(f"{_quote(alias, _field(name).column)} = %s" for name in values)
    conditions = " AND ".join(f"{_quote(alias, _field(name).column)} = %s" for name in where)
    sql = f"UPDATE {_quote(alias, Job._meta.db_table)} SET {sets} WHERE {conditions}"
    if returning:
        sql += " RETURNING " + ", ".join(_quote(alias, field.column) for field in _fields())
    return sql
