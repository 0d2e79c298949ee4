"""The one Celery task of the jobs app: run the job whose id the message carries."""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task
from celery.exceptions import Reject
from celery.worker.request import Request

from . import messages
from .runner import ClaimFailed, job_execute, job_fail_killed
from .worker import RUN_JOB, current

logger = logging.getLogger(__name__)

# How long a worker waits before handing back a message whose claim the database refused: long
# enough that a database outage is not a busy loop between Redis and every worker.
REQUEUE_PAUSE = 1.0


class RunJobRequest(Request):
    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft or not self.args:
            return
        # The worker's main process killed the pool process at the hard time limit: the job
        # function ignored opts.timeout. Fail the attempt of that process's claim only.
        from celery.worker import state

        if not state.should_terminate:
            job_fail_killed(job_id=self.args[0], pool_pid=self.worker_pid, seconds=timeout)
            _forget(self.args[0], self.id)


class RunJobTask(Task):
    Request = RunJobRequest


# The message carries only the id; the row says whether the job may still run.
@shared_task(bind=True, base=RunJobTask, name=RUN_JOB, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Task, job_id: str) -> str:
    worker = current()
    if worker is not None:
        worker.guard_sigterm()
    requeued = False
    try:
        return job_execute(job_id=job_id)
    except ClaimFailed:
        logger.warning("Job %s: could not claim it (database error); its message goes back to the queue", job_id, exc_info=True)
        requeued = True
        time.sleep(REQUEUE_PAUSE)
        raise Reject("the claim hit a database error", requeue=True) from None
    finally:
        if not requeued:
            _forget(job_id, self.request.id)


def _forget(job_id: str, message_id: str | None) -> None:
    """This message is done with (the job ran, or it was not the job's to run): stop tracking it."""
    if not message_id:
        return
    try:
        messages.notes.send(messages.Note.forget(job_id, message_id))
    except Exception:
        logger.warning("Job %s: could not stop tracking message %s", job_id, message_id, exc_info=True)
