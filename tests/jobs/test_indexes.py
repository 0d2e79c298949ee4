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


def run_forwards(operation, migration: str, editor) -> None:
    """Run `operation` of jobs' `migration` (its name) on the database as migrate would."""
    loader = MigrationLoader(connection)
    before = loader.project_state(("jobs", migration), at_end=False)
    after = before.clone()
    operation.state_forwards("jobs", after)
    operation.database_forwards("jobs", editor, before, after)


def index_state(name: str) -> bool | None:
    """True if the index is there and usable, False if there but invalid (PostgreSQL), None if not there."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s", [name])
        else:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


@pytest.mark.django_db(transaction=True)
def test_running_an_interrupted_index_migration_again_builds_what_it_had_not():
    """A failed concurrent build leaves an invalid index (here: made invalid by hand), and the next run builds it again."""
    loader = MigrationLoader(connection)
    add = next(op for op in loader.get_migration("jobs", "0008_admin_state_indexes").operations
               if isinstance(op, AddIndexOnline) and op.index.name == "jobs_job_failed_created_idx")
    name = add.index.name
    assert index_state(name) is True
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [name])
        assert index_state(name) is False
        with connection.schema_editor(atomic=False) as editor:
            run_forwards(add, "0008_admin_state_indexes", editor)  # the invalid one dropped, built again
        assert index_state(name) is True
        with connection.schema_editor(atomic=False) as editor:
            run_forwards(add, "0008_admin_state_indexes", editor)  # a valid one is kept as it is
        assert index_state(name) is True
    else:
        # SQLite builds inside its one writer's lock: a build fails whole, as Django's AddIndex does.
        with pytest.raises(Exception, match="already exists"), connection.schema_editor(atomic=False) as editor:
            run_forwards(add, "0008_admin_state_indexes", editor)
        assert index_state(name) is True
