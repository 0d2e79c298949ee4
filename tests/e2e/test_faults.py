"""Fault injection against real processes: nothing lost, nothing run twice by accident.

Each test counts what it submitted, what completed, what was lost and what ran twice, and
prints one line of the table in docs/reliability.md.
"""

import json
import os
import random
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .stack import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(stack):
    """Stop the stack's own worker for the test, so the test decides which workers run; restore it after."""
    stack.stop("worker")
    started = []

    def start(name, concurrency=2, *extra, env=None):
        started.append(name)
        return stack.start_worker(name, concurrency, *extra, env=env)

    yield start
    for name in started:
        if name in stack.processes:
            stack.stop(name)
    stack.start_worker("worker")


def runs_of(path):
    """How many times each job id ran, from the lines the `records` job function appends."""
    return Counter(line.split()[0] for line in path.read_text().splitlines()) if path.exists() else Counter()


def report(fault, submitted, completed, lost, twice, command):
    line = {"fault": fault, "submitted": submitted, "completed": completed, "lost": lost, "run_twice": twice, "command": command}
    print("RELIABILITY " + json.dumps(line))
    if os.environ.get("RELIABILITY_REPORT"):
        with open(os.environ["RELIABILITY_REPORT"], "a") as out:
            out.write(json.dumps(line) + "\n")


def add_many(stack, count, name="records", data=None, opts=None):
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: stack.add(name, data, opts)["id"], range(count)))


def wait_all(stack, ids, timeout=120):
    return [stack.wait_for(job_id, timeout=timeout) for job_id in ids]


def test_jobs_posted_while_redis_is_down_run_when_it_is_back(stack, workers, tmp_path):
    marker = tmp_path / "runs.txt"
    workers("w1")
    stack.stop_redis()
    started = time.monotonic()
    ids = add_many(stack, 20, data={"path": str(marker)})
    assert time.monotonic() - started < 30
    # reads need only the database
    assert {stack.get(job_id)["state"] for job_id in ids} == {"waiting"}
    stack.start_redis()
    done = wait_all(stack, ids, timeout=90)
    runs = runs_of(marker)
    assert {job["state"] for job in done} == {"completed"}
    assert all(runs[job_id] == 1 for job_id in ids) and len(runs) == 20
    report("Redis down while jobs are added", 20, len(done), 20 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k redis_is_down")


def test_a_worker_killed_mid_job_loses_nothing(stack, workers, tmp_path):
    marker = tmp_path / "runs.txt"
    gate = stack.gate()
    workers("victim", 1, "--prefetch-multiplier", "4")
    crashing = stack.add("records_then_waits", {"path": str(marker), "gate": str(gate)})
    stack.wait_for(crashing["id"], "active")
    prefetched = [stack.add("records", {"path": str(marker)})["id"] for _ in range(3)]
    time.sleep(1)  # the victim reserves these messages but cannot start them
    assert {stack.get(job_id)["state"] for job_id in prefetched} == {"waiting"}
    stack.kill("victim")
    workers("rescuer", 2)
    # the lock runs out (LOCK_DURATION 3 s in tests): the sweep puts the job back and it runs again
    again = stack.wait_for(crashing["id"], lambda j: j["state"] == "active" and j["stalledCounter"] == 1, timeout=30)
    gate.touch()
    done = wait_all(stack, [crashing["id"], *prefetched], timeout=60)
    assert [job["state"] for job in done] == ["completed"] * 4
    runs = runs_of(marker)
    assert runs[crashing["id"]] == 2, "one run killed, one run to completion"
    assert all(runs[job_id] == 1 for job_id in prefetched)
    assert again["attemptsMade"] == 0
    report("Worker SIGKILLed mid-job (with 3 prefetched jobs; the killed job's re-run is forced)", 4,
           sum(job["state"] == "completed" for job in done), 4 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k killed_mid_job")


def test_a_job_whose_worker_keeps_dying_fails_after_the_stall_limit(stack, workers, tmp_path):
    gate = stack.gate()
    job = stack.add("waits_for_gate", {"gate": str(gate)})
    for attempt in range(2):
        workers(f"doomed{attempt}", 1)
        stack.wait_for(job["id"], lambda j, n=attempt: j["state"] == "active" and j["stalledCounter"] == n, timeout=30)
        stack.kill(f"doomed{attempt}")
    workers("sweeper", 1)
    done = stack.wait_for(job["id"], timeout=30)
    assert (done["state"], done["failedReason"], done["stalledCounter"]) == ("failed", "job stalled more than allowable limit", 2)
    report("Worker SIGKILLed twice under one job (MAX_STALLED_COUNT 1): the job fails, clearly", 1,
           int(done["state"] == "failed"), int(done["finishedOn"] is None), 0,
           "./dev test tests/e2e/test_faults.py -k stall_limit")


def test_redis_restarted_and_emptied_under_load(stack, workers, tmp_path):
    marker = tmp_path / "runs.txt"
    workers("w1", 2)
    workers("w2", 2)
    ids = add_many(stack, 300, data={"path": str(marker)})
    wait_until(lambda: len(runs_of(marker)) >= 50, 60, "the first jobs to run", stack)
    # the worst restart: no persistence, every queued message gone
    stack.stop("redis", signal.SIGKILL)
    shutil.rmtree(stack.workdir / "redis")
    stack.start_redis()
    done = wait_all(stack, ids, timeout=180)
    runs = runs_of(marker)
    assert [job["state"] for job in done] == ["completed"] * 300
    assert sorted(runs) == sorted(ids)
    twice = [job_id for job_id, n in runs.items() if n > 1]
    assert twice == []
    report("Redis SIGKILLed and restarted empty under load (2 workers)", 300, len(done), 300 - len(runs), len(twice),
           "./dev test tests/e2e/test_faults.py -k redis_restarted")


def test_three_workers_run_each_of_a_thousand_jobs_exactly_once(stack, workers, tmp_path):
    marker = tmp_path / "runs.txt"
    for n in range(3):
        workers(f"many{n}", 2)
    ids = add_many(stack, 1000, data={"path": str(marker)})
    done = wait_all(stack, ids, timeout=300)
    runs = runs_of(marker)
    pids = {job["returnvalue"]["pid"] for job in done}
    assert [job["state"] for job in done] == ["completed"] * 1000
    assert sorted(runs) == sorted(ids) and set(runs.values()) == {1}
    assert len(pids) >= 3, "the work was shared"
    report("3 workers × 2 processes on one queue", 1000, len(done), 1000 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k thousand")


def test_delete_racing_the_start_is_one_or_the_other(stack, tmp_path):
    """Each job becomes due after 1 s (the sweep promotes it, a worker claims it); the DELETE lands
    anywhere from just before to just after that, so both outcomes happen, and only ever one."""
    marker = tmp_path / "runs.txt"
    jitter = random.Random(7)
    pauses = [jitter.uniform(0.6, 2.4) for _ in range(60)]

    def trial(pause):
        job_id = stack.add("records", {"path": str(marker)}, {"delay": 1000})["id"]
        time.sleep(pause)
        return job_id, stack.request("DELETE", f"/api/job/{job_id}").status_code

    with ThreadPoolExecutor(12) as pool:
        outcomes = dict(pool.map(trial, pauses))
    assert set(outcomes.values()) <= {204, 409}
    for job_id, status in outcomes.items():
        if status == 409:
            stack.wait_for(job_id)
    time.sleep(3)  # a deleted job that were to run anyway would have run by now
    runs = runs_of(marker)
    for job_id, status in outcomes.items():
        assert runs[job_id] == (1 if status == 409 else 0), (job_id, status)
        assert stack.request("GET", f"/api/job/{job_id}").status_code == (200 if status == 409 else 404)
    counts = Counter(outcomes.values())
    report(f"DELETE racing the start ({counts[204]} deleted, {counts[409]} started)",
           60, counts[409], 0, sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k racing")


def test_concurrent_patches_lose_no_key(stack):
    job = stack.add("noop", {"start": 0}, {"delay": 120_000})

    def patch(n):
        return stack.request("PATCH", f"/api/job/{job['id']}", json={f"k{n}": n}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(patch, range(48)))
    assert statuses == [200] * 48
    data = stack.get(job["id"])["data"]
    assert data == {"start": 0, **{f"k{n}": n for n in range(48)}}
    report("48 concurrent PATCHes with distinct keys (counts are keys)", 48, len(data) - 1, 48 - (len(data) - 1), 0,
           "./dev test tests/e2e/test_faults.py -k patches")
    assert stack.request("DELETE", f"/api/job/{job['id']}").status_code == 204


def test_a_delayed_job_survives_a_worker_restart_and_runs_once(stack, workers, tmp_path):
    marker = tmp_path / "runs.txt"
    workers("first", 1)
    # longer than the broker's visibility timeout (10 s in tests)
    job = stack.add("records", {"path": str(marker)}, {"delay": 12_000})
    time.sleep(2)
    stack.stop("first")
    time.sleep(2)
    workers("second", 1)
    done = stack.wait_for(job["id"], timeout=40)
    assert done["processedOn"] - done["timestamp"] >= 12_000
    time.sleep(3)
    runs = runs_of(marker)
    assert runs[job["id"]] == 1
    report("Delayed job (12 s, over the visibility timeout) across a worker restart", 1,
           int(done["state"] == "completed"), 1 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k survives")


def test_a_job_over_its_timeout_is_stopped_and_failed(stack):
    polite = stack.add("sleeps", {"seconds": 30}, {"timeout": 1000})
    stubborn = stack.add("ignores_timeouts", {"seconds": 30}, {"timeout": 1000})
    started = time.monotonic()
    polite_done = stack.wait_for(polite["id"], timeout=20)
    stubborn_done = stack.wait_for(stubborn["id"], timeout=20)
    assert time.monotonic() - started < 20
    assert (polite_done["state"], polite_done["failedReason"]) == ("failed", "Job timed out after 1000 ms (opts.timeout).")
    assert stubborn_done["state"] == "failed"
    assert stubborn_done["failedReason"].startswith("Job timed out and was killed after 3.0 s")
    # the worker replaced the killed pool process and still runs jobs
    assert stack.wait_for(stack.add("noop")["id"])["state"] == "completed"
    finished = [polite_done, stubborn_done]
    report("opts.timeout 1 s on 30 s jobs, one ignoring the soft limit (completed = failed by the timeout)", 2,
           sum(job["state"] == "failed" and "timed out" in job["failedReason"] for job in finished),
           sum(job["finishedOn"] is None for job in finished), 0,
           "./dev test tests/e2e/test_faults.py -k timeout")


def test_sigterm_lets_short_jobs_finish_and_puts_long_ones_back(stack, workers, tmp_path):
    gate = stack.gate()
    workers("stopping", 2)
    short = stack.add("sleeps", {"seconds": 1})
    marker = tmp_path / "runs.txt"
    long = stack.add("records_then_waits", {"gate": str(gate), "path": str(marker)})
    stack.wait_for(short["id"], "active")
    stack.wait_for(long["id"], "active")
    started = time.monotonic()
    stack.stop("stopping", signal.SIGTERM, timeout=30)
    assert time.monotonic() - started < 15
    assert stack.get(short["id"])["state"] == "completed"
    back = stack.get(long["id"])
    assert (back["state"], back["attemptsMade"], back["stalledCounter"]) == ("waiting", 0, 0)
    workers("after", 1)
    gate.touch()
    finished = [stack.get(short["id"]), stack.wait_for(long["id"], timeout=30)]
    assert finished[1]["state"] == "completed"
    runs = runs_of(marker)
    assert runs[long["id"]] == 2, "once interrupted by the shutdown, once to the end"
    report("SIGTERM with a 1 s job and a job past SHUTDOWN_GRACE (put back, then re-run: forced)", 2,
           sum(job["state"] == "completed" for job in finished), 0, sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k sigterm")
