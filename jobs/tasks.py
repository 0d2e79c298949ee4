"""The one Celery task of the jobs app: run the job whose id the message carries."""

import os
import socket

from celery import shared_task

from .runner import job_execute



# The message carries only the id; the row says whether the job may still run.
@shared_task(name="jobs.run_job", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> str:
    return job_execute(job_id=job_id, worker=f"{socket.gethostname()}:{os.getpid()}")
