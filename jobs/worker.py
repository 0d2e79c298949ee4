"""A Celery worker's life as the jobs app sees it: who it is, its sweeper, and its warm shutdown."""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import signal
import struct
import threading
import time

from celery.concurrency import ALIASES
from django.db import close_old_connections, connection

from . import checkpoint, conf, messages, services, statements
from .models import Job
from .checkpoint import Checkpointer
from .sweep import Sweeper

logger = logging.getLogger(__name__)

# What the worker's main process is doing, kept in memory that its pool processes share.
RUNNING, WARM, COLD = 0, 1, 2
# A pool process leaves to the main process a SIGTERM that reaches it within this many seconds
# of the start of the worker's warm shutdown: the platform signalled every process of the worker
# at once (Heroku, docker stop of a process tree, systemd, a terminal, killpg). Any other SIGTERM
# (a cold shutdown, a revoke with terminate) ends the pool process as Celery expects.
SAME_SIGNAL = 1.0
# The jobs app's Celery task (jobs.tasks.run_job).
RUN_JOB = "jobs.run_job"


class ShutdownState:
    """The main process's shutdown state and when its warm shutdown began, readable by its pool processes."""

    _layout = struct.Struct("<Bd")

    def __init__(self) -> None:
        # Anonymous shared memory made before the pool forks: every pool process sees the main
        # process's writes.
        self._memory = mmap.mmap(-1, self._layout.size)

    def set(self, state: int, since: float = 0.0) -> None:
        self._layout.pack_into(self._memory, 0, state, since)

    def get(self) -> tuple[int, float]:
        return self._layout.unpack_from(self._memory, 0)


class Worker:
    """One start of a Celery worker: its identity, its sweeper, its pool processes' SIGTERM and its grace period.

    Made in the main process as Celery sets the worker up (worker_init), before the pool forks,
    so pool processes inherit it; jobs/apps.py wires it to Celery's signals.
    """

    def __init__(self, *, nodename: str, pool: str | type | None = None):
        # Unique to this start whatever the host name and PID: two containers can share both
        # (same hostname, PID 1), and one's shutdown must never put back the other's jobs.
        self.identity = f"{nodename}:{os.getpid()}:{secrets.token_hex(4)}"
        self.pool_name = pool_name(pool)
        # Only a process can be killed on time; a thread or greenlet stops when it chooses to.
        self.stops_jobs_on_time = self.pool_name == "prefork"
        self.sweeper: Sweeper | None = None
        self.checkpointer: Checkpointer | None = None
        self._grace: threading.Timer | None = None
        self._shutdown = ShutdownState()
        self._in_pool_process = False
        self._replaced: object = None
        self._sigterm_left = False

    def __repr__(self) -> str:
        return f"<Worker {self.identity} ({self.pool_name})>"

    def process_name(self, pid: int | None = None) -> str:
        """The name a process of this worker start claims jobs under (the job's `worker` column)."""
        return f"{self.identity}:{pid or os.getpid()}"

    # -- the main process ------------------------------------------------------------------------

    def ready(self) -> None:
        """Start the sweeper, and on SQLite the checkpointer (celery's worker_ready)."""
        if not self.stops_jobs_on_time:
            logger.warning(
                "This worker's %s pool cannot stop a job at its opts.timeout: jobs with opts.timeout "
                "that it takes fail at once. Run them on a prefork worker.",
                self.pool_name,
            )
        interval = conf.get("SWEEP_INTERVAL")
        if interval and self.sweeper is None:
            self.sweeper = Sweeper(interval)
            self.sweeper.start()
        if self.checkpointer is None and checkpoint.wanted():
            self.checkpointer = Checkpointer()
            self.checkpointer.start()

    def shutting_down(self, how: str) -> None:
        """A warm shutdown (SIGTERM) lets running jobs finish for SHUTDOWN_GRACE; then they go back to waiting."""
        if how != "Warm":
            self._shutdown.set(COLD)
            return
        if self._grace is not None:
            return
        self._shutdown.set(WARM, time.monotonic())
        self._grace = threading.Timer(conf.get("SHUTDOWN_GRACE"), self._grace_period_over)
        self._grace.daemon = True
        self._grace.start()

    def _grace_period_over(self) -> None:
        logger.warning("Jobs still running after the %ss shutdown grace period: putting them back", conf.get("SHUTDOWN_GRACE"))
        pids: list[int] = []
        try:
            pids = self.release_jobs()
        finally:
            connection.close()
            self._shutdown.set(COLD)
            # Stop the pool processes of the released jobs now; a cold shutdown ends the rest.
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            os.kill(os.getpid(), signal.SIGQUIT)

    def stopped(self) -> None:
        """Stop the sweeper and the checkpointer, and put back any job still held (celery's worker_shutdown)."""
        for thread in (self.sweeper, self.checkpointer):
            if thread is not None:
                thread.stop()
        self.sweeper = self.checkpointer = None
        if self._grace is not None:
            self._grace.cancel()
        try:
            self.release_jobs()
        except Exception:
            logger.exception("Could not put this worker's running jobs back; the sweep will once their locks run out")
        finally:
            connection.close()

    def release_jobs(self) -> list[int]:
        """Put the jobs this worker start still runs back to waiting; return the pool processes that ran them.

        Each release is fenced by the lock token of the claim it undoes, so a job that finished
        or was taken back meanwhile is left as it is.
        """
        released = [
            name
            for job_id, token, name in list(Job.objects.held_by(self.identity).values_list("pk", "lock_token", "worker"))
            if services.job_release(job_id=job_id, token=token)
        ]
        if released:
            logger.warning("Put %d running jobs back to waiting as the worker stopped", len(released))
        # A threads or solo pool runs jobs in the main process itself: nothing to stop separately.
        return [pid for pid in {int(name.rsplit(":", 1)[1]) for name in released} if pid != os.getpid()]

    # -- pool processes --------------------------------------------------------------------------

    def pool_process_started(self) -> None:
        """Remember that this is a pool process (celery's worker_process_init)."""
        self._in_pool_process = True

    def guard_sigterm(self) -> None:
        """In a pool process, leave a SIGTERM sent to every process at once to the main process; call before each job.

        Celery resets SIGTERM in pool processes and billiard then sets its own handler (after
        worker_process_init, so not there), which ends the process: a platform's SIGTERM to the
        whole worker killed running jobs at once, and the grace period never applied.
        """
        if not self._in_pool_process or signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            return
        self._replaced = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        state, since = self._shutdown.get()
        deadline = time.monotonic() + SAME_SIGNAL / 2
        # The main process may not have handled the same signal yet.
        while state == RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
            state, since = self._shutdown.get()
        if state == WARM and not self._sigterm_left and time.monotonic() - since <= SAME_SIGNAL:
            self._sigterm_left = True
            logger.info("Pool process %d: SIGTERM left to the worker's warm shutdown", os.getpid())
            return
        # Any other SIGTERM ends the process as it did before (billiard's handler, else the default).
        if callable(self._replaced):
            self._replaced(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def pool_name(pool: str | type | None) -> str:
    """Celery's name for a pool ('prefork', 'threads', 'solo', …), given its alias, path or class."""
    if pool is None:
        return "prefork"
    path = ALIASES.get(pool, pool) if isinstance(pool, str) else f"{pool.__module__}:{pool.__qualname__}"
    return next((alias for alias, target in ALIASES.items() if target == path), path)


_current: Worker | None = None


def current() -> Worker | None:
    """The worker this process belongs to, or None outside a Celery worker."""
    return _current


# Receivers of Celery's worker signals, connected in jobs/apps.py.


def on_worker_init(sender, **_signal_kwargs) -> None:
    global _current
    _current = Worker(nodename=sender.hostname, pool=sender.pool_cls)
    # A job's run waits on no announcement to live streams nor on forgetting its message.
    messages.notes.deferred = True


def on_task_boundary(sender=None, **_signal_kwargs) -> None:
    """Before and after each task in a worker: close the database connections Django closes after a
    request, those older than CONN_MAX_AGE or broken; keep the rest for the next job.

    Around a job's run the one the claim uses stays unchecked: CONN_HEALTH_CHECKS would cost each job a
    SELECT 1 first (a round trip on PostgreSQL), and the claim, the job's first statement, goes
    again on a fresh connection if a kept one has died (jobs.runner).
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # run in the caller's process (tests): its connection is the caller's
    close_old_connections()
    if getattr(sender, "name", None) == RUN_JOB:
        # Only the connection the claim uses: a job's other databases are checked as Django checks them.
        db = statements.database()
        if db.connection is not None:
            db.health_check_done = True


def on_worker_ready(**_signal_kwargs) -> None:
    if _current is not None:
        _current.ready()


def on_worker_process_init(**_signal_kwargs) -> None:
    if _current is not None:
        _current.pool_process_started()
        # A pool process's notes are its jobs' own: a few per job, worth one round trip together.
        messages.notes.linger = messages.NOTES_LINGER


def on_worker_process_shutdown(**_signal_kwargs) -> None:
    # A pool process ends with os._exit, which runs no exit handler: send its jobs' last notes now.
    messages.notes.flush()


def on_worker_shutting_down(how: str = "Warm", **_signal_kwargs) -> None:
    if _current is not None:
        _current.shutting_down(how)


def on_worker_shutdown(**_signal_kwargs) -> None:
    if _current is not None:
        _current.stopped()
