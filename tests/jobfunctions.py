"""Small job functions the tests add jobs for, in the test process and in real workers."""

import os
import time
from pathlib import Path

import jobs


@jobs.job("noop", public=True)
def noop(job):
    return {"data": job.data}


@jobs.job("fails", public=True)
def fails(job):
    raise RuntimeError(job.data.get("message", "boom"))


@jobs.job("flaky", public=True)
def flaky(job):
    """Fail the first `fail_times` attempts, then succeed."""
    if job.attempts_made < job.data.get("fail_times", 1):
        raise RuntimeError(f"attempt {job.attempts_made + 1} fails")
    return {"attempts_made": job.attempts_made}


@jobs.job("sleeps", public=True)
def sleeps(job):
    time.sleep(job.data.get("seconds", 1))
    return "slept"


@jobs.job("records", public=True)
def records(job):
    """Append one line per run to data["path"], so tests can count runs and see the data."""
    with open(job.data["path"], "a") as out:
        out.write(f"{job.id} {sorted(job.data)}\n")
    return {"data": job.data, "pid": os.getpid()}


@jobs.job("waits_for_gate", public=True)
def waits_for_gate(job):
    """Report progress, then hold the worker until the file data["gate"] exists."""
    job.progress("started")
    gate = Path(job.data["gate"])
    deadline = time.monotonic() + job.data.get("timeout", 60)
    job.progress(50)
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)
    job.progress(100)
    return {"gate": str(gate), "data": job.data}


@jobs.task
def add(x, y):
    return x + y


@jobs.task(name="tests.progress_task", bind=True)
def progress_task(job, label):
    job.progress({"label": label})
    return label


@jobs.task
def raises(message):
    raise ValueError(message)


@jobs.task(bind=True, max_retries=2)
def retries_then_succeeds(task, fail_times, countdown):
    """Celery's idiom: ask for a retry `countdown` seconds on, `fail_times` times, then succeed."""
    if task.request.retries < fail_times:
        raise task.retry(exc=ConnectionError(f"try {task.request.retries + 1} failed"), countdown=countdown)
    return {"retries": task.request.retries, "max_retries": task.max_retries, "id": task.request.id}


@jobs.task(autoretry_for=(ConnectionError,), retry_backoff=1, retry_jitter=False, max_retries=2)
def autoretries(path, fail_times):
    """Record each run in `path`; raise ConnectionError (retried automatically) on the first `fail_times`."""
    with open(path, "a") as out:
        out.write("run\n")
    runs = len(Path(path).read_text().splitlines())
    if runs <= fail_times:
        raise ConnectionError(f"run {runs} could not connect")
    return runs


@jobs.task(bind=True)
def task_waits_for_gate(task, gate):
    """Report progress, then hold the worker until the file `gate` exists."""
    task.progress({"waiting_for": gate})
    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)
    return "opened"


@jobs.job("counts_users", public=True)
def counts_users(job):
    """Use the Django ORM inside a job, as real job functions do."""
    from django.contrib.auth import get_user_model

    return sorted(get_user_model().objects.values_list("username", flat=True))


@jobs.job("its_connection", public=True)
def its_connection(job):
    """Which database connection ran the job: its process and when it opened (unique per connection)."""
    from django.db import connection

    connection.ensure_connection()
    return {"pid": os.getpid(), "opened": repr(connection.close_at)}


@jobs.job("solo_gate", queue="solo", public=True)
def solo_gate(job):
    return waits_for_gate(job)


@jobs.job("solo_records", queue="solo", public=True)
def solo_records(job):
    return records(job)


@jobs.job("records_then_sleeps", public=True)
def records_then_sleeps(job):
    """Record the run, then take data["seconds"] to finish (a job that ends inside a grace period)."""
    records(job)
    time.sleep(job.data.get("seconds", 1))
    return "slept"


@jobs.job("reports_records", queue="reports", public=True)
def reports_records(job):
    """A job function on a queue of its own."""
    return records(job)


@jobs.job("backlog_records", queue="backlog", public=True)
def backlog_records(job):
    """A job function on a queue that only the test that needs it consumes."""
    return records(job)


@jobs.job("records_then_waits", public=True)
def records_then_waits(job):
    """Record the run, then hold the worker until the gate opens (for crashes mid-job)."""
    records(job)
    return waits_for_gate(job)


@jobs.job("ignores_timeouts", public=True)
def ignores_timeouts(job):
    """Swallow the soft time limit and keep going, so only the hard limit can stop it."""
    deadline = time.monotonic() + job.data["seconds"]
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except BaseException:  # noqa: BLE001 - the point is to ignore SoftTimeLimitExceeded
            pass
    return "never"


@jobs.job("internal_report")
def internal_report(job):
    """Not public: only code may add it, never an API client."""
    return {"secret": "system only"}


@jobs.job("metered", public=True)
def metered(job):
    """Run for data["seconds"], then fail if data["fail"]: jobs whose run times and outcomes a test knows."""
    time.sleep(job.data.get("seconds", 0))
    if job.data.get("fail"):
        raise RuntimeError("metered failure")
    return "metered"
