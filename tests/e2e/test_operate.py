"""Operating the queue against the real stack: retry, promote, list, counts, and `manage.py jobs add --wait`."""

import subprocess
import sys
import time
import uuid

from .stack import ROOT, wait_until


def test_a_retried_job_runs_again_on_the_worker(stack, tmp_path):
    marker = tmp_path / "runs.txt"
    failed = stack.wait_for(stack.add("flaky", {"fail_times": 1, "path": str(marker)})["id"])
    assert (failed["state"], failed["attemptsMade"]) == ("failed", 1)
    # the flaky function fails while attemptsMade < fail_times: a retry starts from 0 again, so it fails again
    retried = stack.request("POST", f"/api/job/{failed['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "waiting"
    again = stack.wait_for(failed["id"])
    assert (again["state"], again["attemptsMade"], len(again["stacktrace"])) == ("failed", 1, 2)
    assert stack.request("POST", f"/api/job/{failed['id']}/retry", key="bob").status_code == 404


def test_a_promoted_job_runs_now(stack):
    job = stack.add("noop", {"n": 1}, {"delay": 3_600_000})
    assert stack.request("POST", f"/api/job/{job['id']}/promote").json()["state"] == "waiting"
    done = stack.wait_for(job["id"])
    assert done["state"] == "completed" and done["processedOn"] - done["timestamp"] < 60_000
    assert stack.request("POST", f"/api/job/{job['id']}/promote").status_code == 409


def test_list_and_counts_are_per_account(stack):
    mine = {stack.add("noop", {"n": n}, {"delay": 3_600_000})["id"] for n in range(3)}
    theirs = stack.add("noop", {}, {"delay": 3_600_000}, key="bob")["id"]
    listed = stack.request("GET", "/api/job?state=delayed&limit=2").json()
    page_two = stack.http.get(listed["next"], headers={"Authorization": f"Bearer {stack.keys['alice']}"}, timeout=10).json()
    ids = {job["id"] for job in listed["results"] + page_two["results"]}
    assert mine <= ids and theirs not in ids
    bob_counts = stack.request("GET", "/api/job/counts", key="bob").json()
    assert bob_counts["delayed"] >= 1 and set(bob_counts) == {"waiting", "delayed", "active", "completed", "failed"}
    for job_id in [*mine, theirs]:
        stack.request("DELETE", f"/api/job/{job_id}", key="alice" if job_id in mine else "bob")


def jobs_command(stack, *args, timeout=60):
    return subprocess.run([sys.executable, "manage.py", "jobs", *args], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=timeout)


def test_jobs_add_wait_shows_progress_and_the_exit_code_says_how_it_ended(stack):
    started = time.monotonic()
    done = jobs_command(stack, "add", "__default__", "--data", '{"step_seconds": 0.2}', "--wait", "--timeout", "45")
    assert done.returncode == 0, done.stderr
    assert "Added job" in done.stdout and "completed" in done.stdout and '"ok": true' in done.stdout
    assert "100%" in done.stdout or "━" in done.stdout  # the progress bar was drawn
    assert time.monotonic() - started >= 1.0  # five steps of 0.2 s ran on the worker
    failed = jobs_command(stack, "add", "fails", "--data", '{"message": "no way"}', "--wait", "--timeout", "45")
    assert failed.returncode == 1
    assert "failed: no way" in failed.stderr


def test_the_table_stays_bounded_under_a_steady_stream_of_jobs(stack):
    """100 jobs over ten seconds, each keeping only the newest 10 completed (removeOnComplete: 10)."""
    name = f"stream{uuid.uuid4().hex[:6]}"
    stack.manage("create_user", name)
    stack.keys[name] = stack.manage("create_api_key", name).strip()
    completed = []

    def count() -> int:
        return stack.request("GET", "/api/job/counts", key=name).json()["completed"]

    for second in range(10):
        for _ in range(10):
            stack.add("noop", {}, {"removeOnComplete": 10}, key=name)
        time.sleep(1)
        completed.append(count())
    # one clean interval (2 s in the test settings) after the stream: exactly the newest 10
    wait_until(lambda: count() == 10, 15, "the clean to keep the newest 10", stack)
    # while the stream ran, at most what two clean intervals of it can add (20) stood above the 10
    assert max(completed) <= 10 + 20 + 10, completed
    listed = stack.request("GET", "/api/job?state=completed", key=name).json()["results"]
    assert len(listed) == 10


def test_log_lines_of_a_running_job_carry_its_id_and_name(stack):
    job = stack.wait_for(stack.add("fails", {"message": "logged"})["id"])
    assert job["state"] == "failed"
    logs = (stack.workdir / "worker.log").read_text()
    assert f"[job={job['id']} name=fails]: Job " in logs
