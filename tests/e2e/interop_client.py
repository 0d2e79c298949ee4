"""Client code the e2e tests run in the stack's `manage.py shell`: Django's and Celery's idioms, served by real workers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.tasks import TaskResult
from django.utils import timezone

from gravity.celery import app
from jobs.backends import for_owner
from tests import djangotasks
from tests.jobfunctions import add, autoretries, raises, retries_then_succeeds, task_waits_for_gate


def run(scenario: str, **arguments: Any) -> None:
    """Run one scenario and print what it saw as one line of JSON (the test reads the last line)."""
    print(json.dumps(SCENARIOS[scenario](**arguments), default=str))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def finished(*results: TaskResult) -> bool:
    for result in results:
        result.refresh()
    return all(result.is_finished for result in results)


def django_tasks(owner: str) -> dict[str, Any]:
    """Enqueue Django tasks of each kind, wait for the workers to run them, and describe the results."""
    run_after = timezone.now() + timedelta(seconds=2)
    with for_owner(owner):
        prioritized = djangotasks.add.using(priority=50).enqueue(2, 3)
    context = djangotasks.describe.enqueue("ctx")
    failing = djangotasks.fails.enqueue("card declined")
    later = djangotasks.add.using(run_after=run_after).enqueue(1, 1)
    later_status = later.status
    retried = djangotasks.flaky.enqueue(2)
    asynchronous = asyncio.run(djangotasks.async_add.aenqueue(4, 5))
    wait_until(lambda: finished(prioritized, context, failing, later, retried, asynchronous), "the Django tasks")
    return {
        "prioritized": {
            "id": prioritized.id,
            "status": prioritized.status,
            "value": prioritized.return_value,
            "priority": djangotasks.add.get_result(prioritized.id).task.priority,
        },
        "context": {"value": context.return_value, "worker_ids": context.worker_ids},
        "failing": {
            "status": failing.status,
            "errors": [error.exception_class_path for error in failing.errors],
            "traceback_ends": failing.errors[0].traceback.splitlines()[-1],
        },
        "later": {
            "status_at_first": later_status,
            "run_after": run_after.isoformat(),
            "started_at": later.started_at.isoformat(),
            "value": later.return_value,
        },
        "retried": {
            "value": retried.return_value,
            "attempts": retried.attempts,
            "latest_worker": retried.worker_ids[-1],
            "errors": len(retried.errors),
        },
        "async": {"status": asynchronous.status, "value": asynchronous.return_value},
    }


def django_priorities(path: str) -> list[str]:
    """Enqueue solo_records tasks of four priorities (a blocked single worker takes them once freed)."""
    return [
        djangotasks.solo_records.using(priority=priority).enqueue(path, label).id
        for priority, label in [(-100, "lowest"), (100, "highest"), (0, "default"), (50, "high")]
    ]


def celery_idioms(workdir: str) -> dict[str, Any]:
    """Use tracked tasks as Celery code does, against real workers, and describe what was seen."""
    seen: dict[str, Any] = {}
    done = add.delay(2, 3)
    seen["get"] = done.get(timeout=60)
    found = app.AsyncResult(done.id)
    seen["async_result"] = [found.state, found.ready(), found.successful(), found.result]

    failing = raises.delay("card declined")
    try:
        failing.get(timeout=60)
    except ValueError as exc:
        seen["raised"] = repr(exc)
    seen["failed"] = [failing.state, failing.failed(), failing.traceback.splitlines()[-1]]

    retried = retries_then_succeeds.delay(2, 1)
    seen["retried"] = retried.get(timeout=60)
    seen["retried_id"] = retried.id
    job = retried.job.to_json()
    seen["retried_job"] = [job["attemptsMade"], job["finishedOn"] - job["timestamp"]]

    auto = autoretries.delay(str(Path(workdir) / "autoretries"), 2)
    seen["autoretried"] = auto.get(timeout=60)
    job = auto.job.to_json()
    seen["autoretried_job"] = [job["attemptsMade"], job["finishedOn"] - job["timestamp"]]

    pending = add.apply_async((1, 1), countdown=600)
    started = time.monotonic()
    try:
        pending.get(timeout=0.5)
    except CeleryTimeoutError as exc:
        seen["timeout"] = [repr(exc), pending.state, round(time.monotonic() - started, 1)]
    pending.job.remove()

    gate = Path(workdir) / "celery-gate"
    running = task_waits_for_gate.delay(str(gate))
    wait_until(lambda: running.state == "STARTED" and running.info is not None, "the gated task to start")
    seen["running"] = [running.state, running.info]
    gate.touch()
    seen["opened"] = running.get(timeout=60)
    return seen


SCENARIOS = {"django_tasks": django_tasks, "django_priorities": django_priorities, "celery_idioms": celery_idioms}
