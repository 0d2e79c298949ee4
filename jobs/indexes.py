"""Migration operations that change the job table's indexes without stopping its writes on PostgreSQL.

A plain AddIndex or RemoveIndex holds a lock that blocks every write to jobs_job while PostgreSQL
builds the index over the whole table (seconds to minutes on a big one): no job could be added,
claimed or finished meanwhile. These build and drop CONCURRENTLY there, and are plain elsewhere
(SQLite has one writer anyway). Their migrations say `atomic = False`.

A concurrent build that fails (a deadlock, a cancel) leaves an INVALID index behind: drop it
(`DROP INDEX CONCURRENTLY <name>`) and run the migration again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations import AddIndex, RemoveIndex


def _online(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexOnline(AddIndexConcurrently):
    """AddIndex, built CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        base = AddIndexConcurrently if _online(schema_editor) else AddIndex
        base.database_forwards(self, app_label, schema_editor, from_state, to_state)

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
