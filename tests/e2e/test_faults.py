"""Fault injection against real processes: nothing lost, nothing run twice by accident.

Each test counts what it submitted, what completed, what was lost and what ran twice, and
prints one line of the table in docs/reliability.md.
"""

import json
import os
import random
import re
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from .stack import wait_until

pytestmark = pytest.mark.slow


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


def pool_processes(stack, name):
    """The pids of the pool processes of the stack's worker `name` (its main process's children)."""
    return {child.pid for child in psutil.Process(stack.processes[name].pid).children()}


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
    anywhere from just before to just after that, so both outcomes happen, and only ever one. Every
    process has a pre_delete receiver connected for all models, as audit apps do (tests/faults.py)."""
    assert stack.python("from django.db.models.signals import pre_delete; from jobs.models import Job; print(pre_delete.has_listeners(Job))").strip() == "True"
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
    report(f"DELETE racing the start, a pre_delete receiver connected ({counts[204]} deleted, {counts[409]} started)",
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


@pytest.mark.parametrize("to", ["main", "group"])
def test_sigterm_lets_short_jobs_finish_and_puts_long_ones_back(stack, workers, tmp_path, to):
    """SIGTERM to the main process (docker stop of a lone process), or to every process of the worker
    at once (Heroku, systemd, docker stop of a process tree): a job that ends inside the grace period
    keeps its result; one that would not end is put back, unharmed, and runs on the next worker."""
    gate = stack.gate()
    marker = tmp_path / "runs.txt"
    workers("stopping", 2)
    short = stack.add("records_then_sleeps", {"seconds": 1.5, "path": str(marker)})
    long = stack.add("records_then_waits", {"gate": str(gate), "path": str(marker)})
    stack.wait_for(short["id"], "active")
    stack.wait_for(long["id"], "active")
    started = time.monotonic()
    stack.stop("stopping", signal.SIGTERM, timeout=30, group=to == "group")
    assert time.monotonic() - started < 15
    kept = stack.get(short["id"])
    assert (kept["state"], kept["returnvalue"]) == ("completed", "slept")
    back = stack.get(long["id"])
    assert (back["state"], back["attemptsMade"], back["stalledCounter"]) == ("waiting", 0, 0)
    workers("after", 1)
    gate.touch()
    finished = [stack.get(short["id"]), stack.wait_for(long["id"], timeout=30)]
    assert finished[1]["state"] == "completed"
    runs = runs_of(marker)
    assert runs[short["id"]] == 1, "the short job ran once and kept its result"
    assert runs[long["id"]] == 2, "once interrupted by the shutdown, once to the end"
    where = "to the main process" if to == "main" else "to every process of the worker at once"
    report(f"SIGTERM {where}, with a 1.5 s job and a job past SHUTDOWN_GRACE (put back, then re-run: forced)", 2,
           sum(job["state"] == "completed" for job in finished), 0, sum(n > 1 for n in runs.values()),
           f"./dev test tests/e2e/test_faults.py -k 'sigterm and {to}'")


def test_a_database_error_at_claim_or_completion_never_strands_or_reruns_a_job(stack, workers, tmp_path):
    """The claim's UPDATE (one job) and the completion's UPDATE (another) fail once with a database
    error inside the worker: the first job's message goes back to the queue and it runs at the next
    delivery, the second's completion is written again; each runs once, long before RESEND_AFTER."""
    marker = tmp_path / "runs.txt"
    workers("steady", 2)
    # Delayed, so the fault is in place before the claim; the id is the internal one the UPDATE carries.
    ids = [stack.add("records", {"path": str(marker)}, {"delay": 1500})["id"] for _ in range(2)]
    faults = [stack.faults / f"claim-{ids[0]}", stack.faults / f"complete-{ids[1]}"]
    for fault in faults:
        fault.touch()
    done = wait_all(stack, ids, timeout=30)
    runs = runs_of(marker)
    assert [job["state"] for job in done] == ["completed", "completed"]
    assert [fault.exists() for fault in faults] == [False, False], "both faults happened"
    log = stack.log("steady")
    assert f"injected fault: claim of job {ids[0]}" in log and f"injected fault: complete of job {ids[1]}" in log
    assert all(runs[job_id] == 1 for job_id in ids)
    assert [job["stalledCounter"] for job in done] == [0, 0]
    # RESEND_AFTER is 30 s in the tests: the claimed job did not wait for the backstop.
    assert all(job["finishedOn"] - job["timestamp"] < 12_000 for job in done)
    report("Database error at the claim of one job and at the completion of another", 2,
           sum(job["state"] == "completed" for job in done), 2 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k database_error")


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="PostgreSQL only: a SQLite database has no server that could cut a connection",
)
def test_connections_cut_by_the_database_server_cost_the_next_jobs_nothing(stack, workers, tmp_path):
    """The server ends every connection the worker keeps between jobs (a PostgreSQL restart, a proxy
    that closes idle connections): each pool process finds its kept connection dead at its next
    claim and claims again on a fresh one (without that second try, the job's message would go back
    to the queue for another delivery). The next jobs run at once (not at RESEND_AFTER), each once."""
    import psycopg

    marker = tmp_path / "runs.txt"
    workers("kept", 2)
    # Enough jobs that both pool processes have run one and kept its connection.
    warm = add_many(stack, 8, data={"path": str(marker)})
    assert {job["state"] for job in wait_all(stack, warm)} == {"completed"}
    pool = pool_processes(stack, "kept")
    assert len(pool) == 2
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert len(cut) >= 2, "the pool processes' kept connections (and the web's, the sweep's)"
    ids = add_many(stack, 8, data={"path": str(marker)})
    done = wait_all(stack, ids, timeout=30)
    runs = runs_of(marker)
    assert [job["state"] for job in done] == ["completed"] * 8
    assert all(runs[job_id] == 1 for job_id in [*warm, *ids])
    # RESEND_AFTER is 30 s in the tests: no job waited for the backstop.
    assert all(job["finishedOn"] - job["timestamp"] < 10_000 for job in done)
    assert stack.log("kept").count("the claim failed on a kept database connection that has died") >= 1
    # No process of the worker died of its dead connection: the same pool processes, still running.
    assert stack.processes["kept"].poll() is None and pool_processes(stack, "kept") == pool
    report("Every database connection cut by the server between jobs (PostgreSQL)", 8,
           sum(job["state"] == "completed" for job in done), 8 - sum(runs[job_id] > 0 for job_id in ids),
           sum(runs[job_id] > 1 for job_id in ids), "./dev test tests/e2e/test_faults.py -k connections_cut")


def test_two_workers_with_the_same_hostname_and_pid_put_back_only_their_own_jobs(stack, workers, tmp_path):
    """Two containers: the same --hostname, each worker PID 1 in a PID namespace of its own. One
    stopping must not put back the job the other is running."""
    marker = tmp_path / "runs.txt"
    gate = stack.gate()
    workers("twin-a", 1, hostname="twin@box", container=True)
    job = stack.add("records_then_waits", {"gate": str(gate), "path": str(marker)})
    stack.wait_for(job["id"], "active")
    workers("twin-b", 1, hostname="twin@box", container=True)
    stack.stop("twin-b")
    assert "Put " not in stack.log("twin-b"), "the stopping twin put back no job"
    assert stack.get(job["id"])["state"] == "active"
    gate.touch()
    done = stack.wait_for(job["id"], timeout=30)
    runs = runs_of(marker)
    assert (done["state"], runs[job["id"]], done["stalledCounter"]) == ("completed", 1, 0)
    report("Two workers with the same --hostname, each PID 1 in its own PID namespace; one stops", 1,
           int(done["state"] == "completed"), 1 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k same_hostname")


def test_jobs_run_on_the_queue_their_function_names_with_a_worker_started_without_queues(stack, workers, tmp_path):
    """A job function on queue 'reports': its jobs go there whether added over HTTP or by Python through
    Queue('jobs'), and `python -m worker` with no -Q consumes it."""
    marker = tmp_path / "runs.txt"
    on_jobs = stack.messages_in("jobs")
    by_http = stack.add("reports_records", {"path": str(marker)})["id"]
    by_python = stack.python(
        f"from jobs import Queue; print(Queue('jobs').add({{'path': {str(marker)!r}}}, name='reports_records').id)"
    ).strip()
    wait_until(lambda: stack.messages_in("reports") == 2, 10, "both messages on the 'reports' queue", stack)
    assert stack.messages_in("jobs") == on_jobs
    workers("all-queues", 1)
    wait_until(lambda: len(runs_of(marker)) == 2, 30, "both jobs to run", stack)
    assert "reports" in stack.log("all-queues").split("[queues]")[1].split("[tasks]")[0]
    states = stack.python(
        f"from jobs.models import Job; print(sorted(Job.objects.filter(pk__in={[by_http, by_python]!r}).values_list('state', flat=True)))"
    ).strip()
    runs = runs_of(marker)
    assert (states, sorted(runs.values())) == ("['completed', 'completed']", [1, 1])
    report("Jobs on the queue their function names (added over HTTP and through Queue('jobs')), worker without -Q", 2,
           states.count("completed"), 2 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k queue_their_function_names")


def test_a_backlog_keeps_one_message_per_waiting_job_past_resend_after(stack, workers, tmp_path):
    """50 jobs wait on a queue nobody consumes, past RESEND_AFTER (30 s in the tests): each keeps one
    message. Then the queue is emptied inside Redis (the jobs' tracking keys survive, as after a purge):
    the next check sends each once more, and a consumer runs each once."""
    marker = tmp_path / "runs.txt"
    workers("sweeps", 1, "-Q", "jobs")
    ids = add_many(stack, 50, name="backlog_records", data={"path": str(marker)})
    wait_until(lambda: stack.messages_in("backlog") == 50, 10, "50 messages on the backlog queue", stack)

    def checked(times):
        found = re.findall(r"(\d+) messages found still queued", stack.log("sweeps"))
        return sum(map(int, found)) >= 50 * times

    wait_until(lambda: checked(1), 60, "a sweep to find the backlog still queued past RESEND_AFTER", stack)
    past_resend_after = stack.messages_in("backlog")
    assert past_resend_after == 50
    client = stack.redis()
    client.delete(*[f"backlog\x06\x16{step}" for step in range(1, 10)], "backlog")
    client.close()
    workers("drains", 1, "-Q", "backlog")
    done = wait_all(stack, ids, timeout=90)
    runs = runs_of(marker)
    assert [job["state"] for job in done] == ["completed"] * 50
    assert sorted(runs) == sorted(ids) and set(runs.values()) == {1}
    assert stack.messages_in("backlog") == 0
    report(f"50 jobs waiting past RESEND_AFTER on a queue nobody consumes ({past_resend_after} messages in Redis); "
           "then their messages lost inside Redis", 50, len(done), 50 - len(runs), sum(n > 1 for n in runs.values()),
           "./dev test tests/e2e/test_faults.py -k backlog")
