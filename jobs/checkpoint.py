"""SQLite's write-ahead log copied into the database by a worker's thread, so that commits seldom have to."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper

from .threads import Periodic

logger = logging.getLogger(__name__)

# How often a worker's main process checkpoints. SQLite's own checkpoint runs inside whichever
# commit takes the log past wal_autocheckpoint pages, and costs that commit its fsyncs: about 4 ms
# here, in one commit of every few dozen (a job's add, claim or completion). Done here instead, the
# log stays far below a project's raised wal_autocheckpoint, left as a backstop for when no worker
# runs.
CHECKPOINT_INTERVAL = 0.1


def wanted(db: BaseDatabaseWrapper = connection) -> bool:
    """Whether the database has a log to checkpoint: an SQLite file (in WAL mode, as the project sets it)."""
    return db.vendor == "sqlite" and not db.is_in_memory_db()


def wal_checkpoint(db: BaseDatabaseWrapper = connection) -> tuple[int, int, int] | None:
    """Copy into the database what it can of SQLite's log, waiting for no reader or writer.

    Returns SQLite's (busy, frames in the log, frames copied), or None on another database.
    """
    if db.vendor != "sqlite":
        return None
    with db.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        busy, logged, copied = cursor.fetchone()
    return busy, logged, copied


class Checkpointer(Periodic):
    """Call wal_checkpoint every `interval` seconds in a daemon thread until stopped."""

    name = "jobs-checkpointer"

    def __init__(self, interval: float = CHECKPOINT_INTERVAL):
        super().__init__(interval)

    def tick(self) -> None:
        try:
            wal_checkpoint()
        except DatabaseError:
            # What is left undone goes with the next checkpoint, or with a commit past the backstop.
            logger.debug("SQLite checkpoint failed; trying again in %ss", self.interval, exc_info=True)
            connection.close()
