"""The one Celery task of the jobs app: run the job whose id the message carries."""

from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded

from . import services
from .runner import job_execute


class RunJobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Runs in the worker's main process when the pool process was killed at the hard time
        # limit: the job function ignored opts.timeout, so fail the attempt here.
        if isinstance(exc, TimeLimitExceeded) and args:
            services.job_fail(
                job_id=args[0],
                reason=f"Job timed out and was killed after {exc.args[0] if exc.args else '?'} s (opts.timeout).",
                stacktrace="",
            )


# The message carries only the id; the row says whether the job may still run.
@shared_task(base=RunJobTask, name="jobs.run_job", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> str:
    return job_execute(job_id=job_id)
