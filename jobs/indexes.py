"""Migration operations that change the job table's indexes without stopping its writes on PostgreSQL.

A plain AddIndex or RemoveIndex holds a lock that blocks every write to jobs_job while PostgreSQL
builds the index over the whole table (seconds to minutes on a big one): no job could be added,
claimed or finished meanwhile. These build and drop CONCURRENTLY there, and are plain elsewhere
(SQLite has one writer anyway). Their migrations say `atomic = False`.

A concurrent build that fails (a deadlock, a cancel, a lost connection) stops the migration and
leaves an INVALID index behind, which PostgreSQL keeps updating but never reads. Running the
migration again drops it and builds it again, and keeps the indexes an earlier run did build.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations import AddIndex, RemoveIndex


def _online(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def _valid(schema_editor: Any, name: str) -> bool | None:
    """Whether PostgreSQL's index `name` is valid; None when there is none."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


class AddIndexOnline(AddIndexConcurrently):
    """AddIndex, built CONCURRENTLY on PostgreSQL; again if a failed build left it invalid."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not _online(schema_editor):
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
            return
        valid = _valid(schema_editor, self.index.name)
        if valid:
            return  # built by an earlier run of this migration, stopped by a later operation
        if valid is False:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}")
        AddIndexConcurrently.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        base = AddIndexConcurrently if _online(schema_editor) else AddIndex
        base.database_backwards(self, app_label, schema_editor, from_state, to_state)


class RemoveIndexOnline(RemoveIndexConcurrently):
    """RemoveIndex, dropped CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        base = RemoveIndexConcurrently if _online(schema_editor) else RemoveIndex
        base.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        base = RemoveIndexConcurrently if _online(schema_editor) else RemoveIndex
        base.database_backwards(self, app_label, schema_editor, from_state, to_state)
