"""Django Tasks (django.tasks) the tests enqueue, on the jobs backend, in the test process and in real workers."""

import asyncio
import time
from pathlib import Path

from django.tasks import task


@task
def add(x, y):
    return x + y


@task
async def async_add(x, y):
    await asyncio.sleep(0)
    return x + y


@task
def fails(message):
    raise ValueError(message)


@task(takes_context=True)
def describe(context, label):
    """Return what the task's context says about the attempt that runs it."""
    result = context.task_result
    return {
        "label": label,
        "attempt": context.attempt,
        "id": result.id,
        "status": result.status,
        "worker_ids": result.worker_ids,
        "priority": result.task.priority,
    }


@task(backend="retrying", takes_context=True)
def flaky(context, fail_times):
    """Fail the first `fail_times` attempts (the "retrying" backend allows 3), then return the attempt."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


@task(queue_name="solo")
def solo_records(path, label):
    """Append a line to `path`, on the "solo" queue, so tests can see the order tasks ran in."""
    with open(path, "a") as out:
        out.write(f"{label}\n")
    return label


@task
def waits_for_gate(gate, timeout=60):
    """Hold the worker until the file `gate` exists."""
    deadline = time.monotonic() + timeout
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)
    return "opened"
