"""Job counts kept as jobs change (jobs/counts.py): two tables and the database triggers that fill them.

Every INSERT, DELETE and change of state (or owner, queue, name) of a job row writes one row per
side to jobs_count_change, whoever writes it (the worker, the API, the admin, a shell); each sweep
folds those rows into jobs_count. The tables are not models, so a test's flush leaves them to the
triggers: a DELETE of every job writes a -1 for each (SQLite), a TRUNCATE empties both (PostgreSQL).

A later migration that makes SQLite rebuild jobs_job (most AlterFields do: a new table, a copy, a
DROP) drops these triggers with the old table, and one that widens owner, queue, name or state
must widen the columns here: it has to create the triggers again and keep the widths in step.
tests/jobs/test_counts.py checks that the triggers exist after every migration.
"""

from django.db import migrations

COLUMNS = "owner varchar(100) NOT NULL, queue varchar(100) NOT NULL, name varchar(200) NOT NULL, state varchar(16) NOT NULL"
KEY = "owner, queue, name, state"
CHANGED = (
    "OLD.state IS NOT NEW.state OR OLD.owner IS NOT NEW.owner OR OLD.queue IS NOT NEW.queue OR OLD.name IS NOT NEW.name"
)
TABLES = [
    f"CREATE TABLE jobs_count ({COLUMNS}, n bigint NOT NULL, PRIMARY KEY ({KEY}))",
    # No index: the rows since the last fold are few, and every job's change writes here.
    f"CREATE TABLE jobs_count_change ({COLUMNS}, n integer NOT NULL)",
]
# The key of the advisory lock held by a fold on PostgreSQL (jobs.counts.FOLD_LOCK).
FOLD_LOCK = 0x6A6F6273
COUNT_EXISTING = f"INSERT INTO jobs_count ({KEY}, n) SELECT {KEY}, COUNT(*) FROM jobs_job GROUP BY {KEY}"


def _row(side: str, n: int) -> str:
    return f"({side}.owner, {side}.queue, {side}.name, {side}.state, {n})"


SQLITE = [
    *TABLES,
    "CREATE TRIGGER jobs_job_counted_insert AFTER INSERT ON jobs_job BEGIN "
    f"INSERT INTO jobs_count_change ({KEY}, n) VALUES {_row('NEW', 1)}; END",
    "CREATE TRIGGER jobs_job_counted_delete AFTER DELETE ON jobs_job BEGIN "
    f"INSERT INTO jobs_count_change ({KEY}, n) VALUES {_row('OLD', -1)}; END",
    f"CREATE TRIGGER jobs_job_counted_update AFTER UPDATE OF {KEY} ON jobs_job WHEN {CHANGED} BEGIN "
    f"INSERT INTO jobs_count_change ({KEY}, n) VALUES {_row('OLD', -1)}, {_row('NEW', 1)}; END",
    COUNT_EXISTING,
]
SQLITE_REVERSE = [
    "DROP TRIGGER jobs_job_counted_insert",
    "DROP TRIGGER jobs_job_counted_delete",
    "DROP TRIGGER jobs_job_counted_update",
    "DROP TABLE jobs_count_change",
    "DROP TABLE jobs_count",
]

POSTGRESQL = [
    # No job is written while the counts start: they would be neither counted nor seen by a trigger.
    "LOCK TABLE jobs_job IN SHARE MODE",
    *TABLES,
    # Every fold deletes what the triggers inserted: vacuum the dead rows as soon as autovacuum
    # looks (each autovacuum_naptime), not after a fifth of a table that is nearly always empty.
    "ALTER TABLE jobs_count_change SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0)",
    f"""CREATE FUNCTION jobs_job_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO jobs_count_change ({KEY}, n) VALUES {_row('OLD', -1)};
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO jobs_count_change ({KEY}, n) VALUES {_row('NEW', 1)};
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION jobs_job_counted_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- A fold under way would commit totals this DELETE cannot see: wait for it (counts.FOLD_LOCK).
        PERFORM pg_advisory_xact_lock({FOLD_LOCK});
        DELETE FROM jobs_count_change;
        DELETE FROM jobs_count;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER jobs_job_counted AFTER INSERT OR DELETE ON jobs_job FOR EACH ROW EXECUTE FUNCTION jobs_job_counted()",
    f"CREATE TRIGGER jobs_job_counted_update AFTER UPDATE OF {KEY} ON jobs_job FOR EACH ROW "
    f"WHEN ({CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}) EXECUTE FUNCTION jobs_job_counted()",
    "CREATE TRIGGER jobs_job_counted_truncate AFTER TRUNCATE ON jobs_job FOR EACH STATEMENT "
    "EXECUTE FUNCTION jobs_job_counted_truncate()",
    COUNT_EXISTING,
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER jobs_job_counted ON jobs_job",
    "DROP TRIGGER jobs_job_counted_update ON jobs_job",
    "DROP TRIGGER jobs_job_counted_truncate ON jobs_job",
    "DROP FUNCTION jobs_job_counted()",
    "DROP FUNCTION jobs_job_counted_truncate()",
    "DROP TABLE jobs_count_change",
    "DROP TABLE jobs_count",
]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in statements:
            raise NotImplementedError(f"Job counts need triggers written for {vendor}; SQLite and PostgreSQL have them.")
        for statement in statements[vendor]:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0005_retention"),
    ]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRESQL}),
            _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}),
        ),
    ]
