"""The no-op work both sides of the benchmark run: a job function, and a raw Celery task."""

from celery import shared_task

import jobs


@jobs.job("bench.noop", public=True)
def noop_job(job):
    return None


@shared_task(name="bench.noop")
def noop_task():
    return None
