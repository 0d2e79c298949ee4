"""Migration operations that change the job table's indexes without stopping its writes on PostgreSQL.

A plain AddIndex or RemoveIndex holds a lock that blocks every write to jobs_job while PostgreSQL
builds the index over the whole table (seconds to minutes on a big one): no job could be added,
claimed or finished meanwhile. These build and drop CONCURRENTLY there, and are plain elsewhere
(SQLite has one writer anyway). Their migrations say `atomic = False`.

A concurrent build that fails (a deadlock, a cancel, a lost connection) stops the migration and
leaves an INVALID index behind, which PostgreSQL keeps updating but never reads. And a migration
that is not atomic (these are not, on either database) can stop between two operations. Running it
again (forwards or backwards) drops an invalid index and builds it again, keeps the indexes an
earlier run did build, and skips a drop already done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently


def _online(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def _valid(schema_editor: Any, model: Any, name: str) -> bool | None:
    """Whether the index `name` is there and usable: True, False (PostgreSQL's INVALID), None (not there)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if not _online(schema_editor):
            return True if name in connection.introspection.get_constraints(cursor, model._meta.db_table) else None
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def _add(schema_editor: Any, model: Any, index: Any) -> None:
    """Build `index` unless a run of the migration stopped after building it; an invalid one is built again."""
    online = _online(schema_editor)
    if not schema_editor.collect_sql:  # sqlmigrate prints the statements, whatever the database holds
        valid = _valid(schema_editor, model, index.name)
        if valid:
            return
        if valid is False:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(index.name)}")
    schema_editor.add_index(model, index, concurrently=True) if online else schema_editor.add_index(model, index)


def _remove(schema_editor: Any, model: Any, index: Any) -> None:
    """Drop `index` if it is there (PostgreSQL's DROP says IF EXISTS; SQLite's is asked first)."""
    if _online(schema_editor):
        schema_editor.remove_index(model, index, concurrently=True)
    elif schema_editor.collect_sql or _valid(schema_editor, model, index.name) is not None:
        schema_editor.remove_index(model, index)


class _Online:
    """What both operations do around an index change: the router's say, and no transaction on PostgreSQL."""

    def _change(self, schema_editor: Any, model: Any, index: Any, change: Callable[[Any, Any, Any], None]) -> None:
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if _online(schema_editor):
            self._ensure_not_in_transaction(schema_editor)
        change(schema_editor, model, index)


class AddIndexOnline(_Online, AddIndexConcurrently):
    """AddIndex, built CONCURRENTLY on PostgreSQL; either way, a migration stopped half-way runs again."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._change(schema_editor, to_state.apps.get_model(app_label, self.model_name), self.index, _add)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._change(schema_editor, from_state.apps.get_model(app_label, self.model_name), self.index, _remove)


class RemoveIndexOnline(_Online, RemoveIndexConcurrently):
    """RemoveIndex, dropped CONCURRENTLY on PostgreSQL; either way, a migration stopped half-way runs again."""

    def _index(self, app_label: str, state: Any) -> tuple[Any, Any]:
        model = state.apps.get_model(app_label, self.model_name)
        return model, state.models[app_label, self.model_name_lower].get_index_by_name(self.name)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._change(schema_editor, *self._index(app_label, from_state), _remove)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._change(schema_editor, *self._index(app_label, to_state), _add)
