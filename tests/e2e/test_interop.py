"""Django's Tasks and Celery's idioms against real processes: code in a shell of the stack, a celery worker, redis-server."""

import json
from datetime import datetime

from .stack import wait_until


def client(stack, scenario, **arguments):
    """Run a scenario of tests/e2e/interop_client.py in `manage.py shell`, as application code; return what it saw."""
    code = f"from tests.e2e.interop_client import run; run({scenario!r}, **{arguments!r})"
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def account_of(stack, key="alice"):
    return f"account:{stack.request('GET', '/api/account', key=key).json()['account']['id']}"


def test_djangos_tasks_api_runs_on_the_workers(stack):
    seen = client(stack, "django_tasks", owner=account_of(stack))

    assert seen["prioritized"] == {"id": seen["prioritized"]["id"], "status": "SUCCESSFUL", "value": 5, "priority": 50}
    assert seen["context"]["value"]["attempt"] == 1
    assert seen["context"]["value"]["status"] == "RUNNING"
    assert seen["context"]["worker_ids"] == [seen["context"]["value"]["worker_ids"][0]] != [""]
    assert seen["failing"] == {
        "status": "FAILED", "errors": ["builtins.ValueError"], "traceback_ends": "ValueError: card declined"
    }
    assert seen["later"]["status_at_first"] == "READY" and seen["later"]["value"] == 2
    assert datetime.fromisoformat(seen["later"]["started_at"]) >= datetime.fromisoformat(seen["later"]["run_after"])
    assert (seen["retried"]["value"], seen["retried"]["attempts"], seen["retried"]["errors"]) == (3, 3, 2)
    assert seen["retried"]["latest_worker"] != ""  # the worker of the latest attempt; earlier ones ""
    assert seen["async"] == {"status": "SUCCESSFUL", "value": 9}

    # The job of a task enqueued for an account is that account's, in the API like any other.
    job = stack.get(seen["prioritized"]["id"])
    assert (job["name"], job["state"], job["returnvalue"], job["opts"]["priority"]) == ("tests.djangotasks.add", "completed", 5, 3)
    assert stack.request("GET", f"/api/job/{seen['prioritized']['id']}", key="bob").status_code == 404


def test_djangos_priorities_order_the_queue(stack, tmp_path):
    """One single-process worker on the solo queue: once it is free it takes Django's tasks by priority."""
    order = tmp_path / "order.txt"
    with stack.held_solo_worker() as gate:
        client(stack, "django_priorities", path=str(order))
        gate.touch()
        wait_until(lambda: order.exists() and len(order.read_text().splitlines()) == 4, 60, "the four tasks", stack)
    assert order.read_text().splitlines() == ["highest", "high", "default", "lowest"]


def test_celerys_idioms_work_on_tracked_tasks(stack, tmp_path):
    seen = client(stack, "celery_idioms", workdir=str(tmp_path))

    assert seen["get"] == 5
    assert seen["async_result"] == ["SUCCESS", True, True, 5]
    assert seen["raised"] == "ValueError('card declined')"
    assert seen["failed"] == ["FAILURE", True, "ValueError: card declined"]
    assert seen["retried"] == {"retries": 2, "max_retries": 2, "id": seen["retried_id"]}
    attempts_made, took = seen["retried_job"]
    assert attempts_made == 2 and took >= 2000  # two retries, each 1 s on (countdown=1)
    attempts_made, took = seen["autoretried_job"]
    assert (seen["autoretried"], attempts_made) == (3, 2)
    assert took >= 3000  # retry_backoff=1: 1 s, then 2 s
    assert seen["timeout"][:2] == ["TimeoutError('The operation timed out.')", "PENDING"]
    assert seen["timeout"][2] < 2
    assert seen["running"][0] == "STARTED" and seen["running"][1] == {"waiting_for": str(tmp_path / "celery-gate")}
    assert seen["opened"] == "opened"
