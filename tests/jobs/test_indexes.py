"""The job table's index migrations: built and dropped while jobs are written, on PostgreSQL."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from jobs.indexes import AddIndexOnline, RemoveIndexOnline


def sql_of(migration: str, *, backwards: bool = False) -> str:
    out = StringIO()
    call_command("sqlmigrate", "jobs", migration, backwards=backwards, stdout=out)
    return out.getvalue()


# sqlmigrate runs a non-atomic migration's SQL as it would: outside the test's own transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("migration", ["0007", "0008"])
@pytest.mark.parametrize("backwards", [False, True])
def test_index_migrations_do_not_block_writes_on_postgresql(migration, backwards):
    sql = sql_of(migration, backwards=backwards)
    statements = [line for line in sql.splitlines() if line.startswith(("CREATE INDEX", "DROP INDEX"))]
    assert statements and "BEGIN;" not in sql, sql
    concurrently = [statement for statement in statements if " CONCURRENTLY " in statement]
    # PostgreSQL builds and drops each index CONCURRENTLY, outside a transaction; SQLite as usual.
    assert concurrently == (statements if connection.vendor == "postgresql" else []), sql


def test_every_index_change_since_the_counts_is_online():
    """Migration 0006 onwards: a new index on the job table is added with jobs.indexes' operations."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for (app, name), migration in loader.disk_migrations.items():
        if app != "jobs" or name <= "0006":
            continue
        kinds = {type(operation).__name__ for operation in migration.operations}
        assert not kinds & {"AddIndex", "RemoveIndex"}, (name, kinds)
        if kinds & {AddIndexOnline.__name__, RemoveIndexOnline.__name__}:
            assert migration.atomic is False, name
