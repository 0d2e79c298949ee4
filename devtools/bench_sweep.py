"""Time the sweep on a big job table: `./dev bench-sweep` (SQLite, then a throwaway PostgreSQL).

Fills a throwaway database with finished jobs, runs ANALYZE and times sweeps that find nothing to
do (what every worker pays each SWEEP_INTERVAL); adds a waiting backlog and does it again; then
times sweeps right after the broker lost its data (each sends a batch of the backlog again).
Prints medians. The broker is a stand-in, so the times are the database's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from devtools import postgres

COLUMNS = (
    "id", "owner", "public_id", "name", "queue", "data", "opts", "state", "priority", "delay", "attempts",
    "attempts_made", "progress", "return_value", "failed_reason", "stacktrace", "created_at", "run_at",
    "sent_at", "processed_on", "finished_on", "worker", "lock_token", "lock_until", "stalled_count",
)


class QuietBroker:
    """A broker that takes every message and holds every one it took: no Redis in the timings."""

    def __init__(self, lost_since: datetime | None = None):
        self.lost = lost_since
        self.published = 0

    def publish_many(self, messages: list[Any]) -> list[str]:
        self.published += len(messages)
        return [uuid.uuid4().hex for _ in messages]

    tracks_messages = True

    def sent(self, job_ids: list[str]) -> set[str]:
        return set() if self.lost else set(job_ids)

    def still_queued(self, jobs: list[Any]) -> set[str]:
        # After a loss every tracking key is gone with the messages; otherwise all are queued.
        return set() if self.lost else {job.job_id for job in jobs}

    def lost_before(self) -> datetime | None:
        return self.lost

    def forget(self, job_id: str, message_id: str) -> None:
        pass


def rows(now: datetime, *, finished: int = 0, waiting: int = 0, delayed: int = 0, active: int = 0, first: int = 0) -> Iterator[tuple]:
    """Job rows: a month of finished jobs, a backlog sent within RESEND_AFTER, delayed and running jobs."""
    rng = random.Random(first)

    def row(n: int, state: str, created: datetime, **fields: Any) -> tuple:
        pk = f"bench{n:09d}"
        values = {
            "id": pk, "owner": f"account:{n % 50}", "public_id": pk, "name": "__default__", "queue": "jobs",
            "data": json.dumps({"n": n}), "opts": "{}", "state": state, "priority": None, "delay": 0,
            "attempts": 1, "attempts_made": 0, "progress": "0", "return_value": None, "failed_reason": None,
            "stacktrace": "[]", "created_at": created, "run_at": created, "sent_at": None, "processed_on": None,
            "finished_on": None, "worker": "", "lock_token": "", "lock_until": None, "stalled_count": 0,
            **fields,
        }
        return tuple(values[column] for column in COLUMNS)

    n = first
    for _ in range(finished):
        created = now - timedelta(seconds=rng.uniform(3600, 30 * 86400))
        state = "failed" if n % 10 == 0 else "completed"
        yield row(
            n, state, created, sent_at=created, processed_on=created + timedelta(seconds=1),
            finished_on=created + timedelta(seconds=3), worker="bench@host:1:feed:2",
            return_value='{"ok": true}' if state == "completed" else None,
            failed_reason="boom" if state == "failed" else None, attempts_made=int(state == "failed"),
        )
        n += 1
    for _ in range(waiting):
        # A backlog whose messages are all on the broker, sent less than RESEND_AFTER ago.
        created = now - timedelta(seconds=rng.uniform(1, 600))
        yield row(n, "waiting", created, sent_at=created)
        n += 1
    for _ in range(delayed):
        created = now - timedelta(seconds=rng.uniform(1, 600))
        yield row(n, "delayed", created, run_at=now + timedelta(hours=rng.uniform(1, 48)), delay=3_600_000)
        n += 1
    for _ in range(active):
        created = now - timedelta(seconds=rng.uniform(1, 60))
        yield row(
            n, "active", created, sent_at=created, processed_on=created, worker="bench@host:1:feed:3",
            lock_token=uuid.uuid4().hex, lock_until=now + timedelta(seconds=30),
        )
        n += 1


def fill(table_rows: Iterator[tuple]) -> None:
    from django.db import connection, transaction

    placeholders = ", ".join(["%s"] * len(COLUMNS))
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY jobs_job ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for values in table_rows:
                    copy.write_row(values)
        else:
            adapt = connection.ops.adapt_datetimefield_value
            sql = f"INSERT INTO jobs_job ({', '.join(COLUMNS)}) VALUES ({placeholders})"
            while chunk := list(itertools.islice(table_rows, 20_000)):
                cursor.executemany(sql, [tuple(adapt(v) if isinstance(v, datetime) else v for v in values) for values in chunk])
    # The counts' changes, folded as the workers' sweeps fold them while jobs come in: the sweeps
    # timed here find the counts up to date, as they would.
    from jobs.counts import jobs_counts_fold

    while jobs_counts_fold(budget=60):
        pass
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "ANALYZE jobs_job")


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def bench(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from jobs.models import Job
    from jobs.sweep import jobs_sweep

    call_command("migrate", verbosity=0)
    now = timezone.now()
    idle = lambda: jobs_sweep(now=now, broker=QuietBroker())  # noqa: E731
    # First the finished jobs alone (the table of a quiet installation), then with the backlog.
    fill(rows(now, finished=args.finished))
    finished_only = timed(idle, args.repeat)
    fill(rows(now, waiting=args.waiting, delayed=args.delayed, active=args.active, first=args.finished))
    with_backlog = timed(idle, args.repeat)
    # Nothing was due, stalled or lost: the idle sweeps changed nothing.
    assert Job.objects.filter(state="waiting", sent_at__isnull=True).count() == 0
    # The broker lost its data a moment ago: each sweep sends one batch of the backlog again.
    lost = QuietBroker(lost_since=now + timedelta(seconds=1))
    later = now + timedelta(seconds=2)
    batches = timed(lambda: jobs_sweep(now=later, broker=lost), args.loss_sweeps)
    if connection.vendor == "sqlite":
        database = f"SQLite {connection.Database.sqlite_version}"
    else:
        database = f"PostgreSQL {connection.pg_version // 10000}.{connection.pg_version % 10000}"
    rows_in_table = Job.objects.count()
    connection.close()  # before the database is dropped
    return {
        "database": database,
        "rows": rows_in_table,
        "finished_only_median_ms": round(statistics.median(finished_only), 2),
        "idle_median_ms": round(statistics.median(with_backlog), 2),
        "idle_p95_ms": round(sorted(with_backlog)[int(len(with_backlog) * 0.95) - 1], 2),
        "loss_batch_median_ms": round(statistics.median(batches), 2),
        "loss_batch_max_ms": round(max(batches), 2),
        "loss_batches": len(batches),
        "loss_messages": lost.published,
    }


def throwaway_database() -> tuple[str, Callable[[], None]]:
    """A new SQLite file, or a new database on the PostgreSQL server DATABASE_URL names."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return postgres.throwaway_database(url, "gravity_bench")
    directory = Path(tempfile.mkdtemp(prefix="gravity-bench-"))
    return f"sqlite:///{directory / 'bench.sqlite3'}", partial(shutil.rmtree, directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_sweep", description=__doc__)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--delayed", type=int, default=0)
    parser.add_argument("--active", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=200, help="idle sweeps to time")
    parser.add_argument("--loss-sweeps", type=int, default=20, help="sweeps to time after a broker loss")
    args = parser.parse_args(argv)
    url, drop = throwaway_database()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gravity.settings")
    try:
        result = bench(args)
    finally:
        drop()
    print(
        f"{result['database']}: idle sweep median {result['finished_only_median_ms']} ms with {args.finished:,} "
        f"finished jobs; {result['idle_median_ms']} ms (p95 {result['idle_p95_ms']} ms) with {args.waiting:,} "
        f"waiting too ({args.repeat} sweeps each); after a broker loss: median {result['loss_batch_median_ms']} ms "
        f"per sweep, longest {result['loss_batch_max_ms']} ms ({result['loss_messages']} messages in "
        f"{result['loss_batches']} sweeps)"
    )
    print("BENCH " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
