"""The job table's index migrations: built and dropped while jobs are written, on PostgreSQL."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.db.migrations.loader import MigrationLoader

from jobs import services
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
    # Each of them adds an index and drops one: both statements, whatever the database holds now.
    assert {statement.split()[0] for statement in statements} == {"CREATE", "DROP"} and "BEGIN;" not in sql, sql
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


def run(operation, migration: str, *, backwards: bool = False) -> None:
    """Run `operation` of jobs' `migration` (its name) on the database as migrate would, outside a transaction."""
    loader = MigrationLoader(connection)
    before = loader.project_state(("jobs", migration), at_end=False)
    after = before.clone()
    operation.state_forwards("jobs", after)
    with connection.schema_editor(atomic=False) as editor:
        if backwards:
            operation.database_backwards("jobs", editor, after, before)
        else:
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


def break_index(name: str) -> None:
    """Leave `name` as a failed build leaves it: INVALID on PostgreSQL (a unique build over duplicates), absent on SQLite."""
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX "{name}"')
        if connection.vendor == "postgresql":
            for _ in range(2):
                services.job_create(name="noop")  # two jobs on one queue
            with pytest.raises(IntegrityError):
                cursor.execute(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON jobs_job (queue)')


@pytest.mark.django_db(transaction=True)
def test_an_index_migration_stopped_half_way_runs_again_forwards_and_backwards():
    """Each operation of 0008 run twice, and after a failed build, ends as one run would."""
    operations = MigrationLoader(connection).get_migration("jobs", "0008_admin_state_indexes").operations
    add = next(op for op in operations if isinstance(op, AddIndexOnline) and op.index.name == "jobs_job_failed_created_idx")
    remove = next(op for op in operations if isinstance(op, RemoveIndexOnline))
    migration = "0008_admin_state_indexes"
    assert (index_state(add.index.name), index_state(remove.name)) == (True, None)
    run(add, migration)  # built already: kept
    run(remove, migration)  # dropped already: nothing to drop
    assert (index_state(add.index.name), index_state(remove.name)) == (True, None)
    break_index(add.index.name)
    assert index_state(add.index.name) is (False if connection.vendor == "postgresql" else None)
    run(add, migration)
    assert index_state(add.index.name) is True
    # Backwards, twice over each: the old index back, the new one gone.
    for _ in range(2):
        run(remove, migration, backwards=True)
        run(add, migration, backwards=True)
    assert (index_state(add.index.name), index_state(remove.name)) == (None, True)
    break_index(remove.name)
    run(remove, migration, backwards=True)
    assert index_state(remove.name) is True
    for operation in (add, remove):  # forwards again, as the database was
        run(operation, migration)
    assert (index_state(add.index.name), index_state(remove.name)) == (True, None)
