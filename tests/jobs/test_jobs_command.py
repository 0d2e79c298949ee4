"""`manage.py jobs`: what operators see and do, and the clear errors on bad input."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import jobs
from jobs.models import Job
from jobs.runner import job_execute

pytestmark = pytest.mark.django_db


def jobs_command(*args) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_list_shows_every_owners_jobs_newest_first_with_state_and_progress():
    first = jobs.Queue().add({"n": 1}, name="noop", job_id="first")
    jobs.Queue().add({"n": 2}, name="fails", job_id="second", owner="account:7")
    job_execute(job_id=first._record.pk, worker="w")
    listing = jobs_command("list")
    lines = [line for line in listing.splitlines() if "│" in line and ("first" in line or "second" in line)]
    assert "second" in lines[0] and "account:7" in lines[0] and "waiting" in lines[0]
    assert "first" in lines[1] and "(system)" in lines[1] and "completed" in lines[1] and "0/1" in lines[1]
    assert "│ second" not in jobs_command("list", "--state", "completed")
    both = jobs_command("list", "--state", "completed", "--state", "waiting")
    assert "│ second" in both and both.index("│ second") < both.index("│ first")
    assert "│ first" not in jobs_command("list", "--owner", "account:7")


def test_show_prints_the_job_json_with_owner_and_queue():
    jobs.Queue().add({"n": 1}, name="noop", job_id="report-7", owner="account:7")
    shown = json.loads(jobs_command("show", "report-7"))
    assert (shown["id"], shown["owner"], shown["queue"], shown["data"]) == ("report-7", "account:7", "jobs", {"n": 1})


def test_an_id_several_owners_use_needs_owner():
    for owner in ("account:1", "account:2"):
        jobs.Queue().add(name="noop", job_id="same", owner=owner)
    with pytest.raises(CommandError, match=r"Several owners have a job 'same' \('account:1', 'account:2'\): say which with --owner."):
        jobs_command("show", "same")
    assert json.loads(jobs_command("show", "same", "--owner", "account:2"))["id"] == "same"


def test_add_takes_any_job_function_and_options():
    out = jobs_command("add", "internal_report", "--data", '{"a": 1}', "--delay", "5000", "--attempts", "3", "--job-id", "nightly")
    job = Job.objects.get(public_id="nightly")
    assert "Added job nightly (internal_report, delayed)." in out
    assert (job.owner, job.data, job.opts["attempts"], job.state) == ("", {"a": 1}, 3, "delayed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "noop", "--data", "{nope"], "--data is not JSON: "),
        (["add", "nothing-by-this-name"], "No job function is registered as 'nothing-by-this-name'"),
        (["add", "noop", "--data", "[1]"], "data must be a JSON object."),
        (["show", "missing"], "No job with id 'missing'."),
        (["retry", "missing"], "No job with id 'missing'."),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("[", r"\[")):
        jobs_command(*args)


def test_retry_promote_and_remove_follow_the_api_rules():
    failed = jobs.Queue().add(name="fails", job_id="broke")
    job_execute(job_id=failed._record.pk, worker="w")
    assert "Job broke is waiting to run again." in jobs_command("retry", "broke")
    with pytest.raises(CommandError, match="Job 'broke' is waiting: only a failed job can be retried."):
        jobs_command("retry", "broke")
    jobs.Queue().add(name="noop", job_id="later", delay=60_000)
    assert "Job later is waiting to run now." in jobs_command("promote", "later")
    assert "Job later removed." in jobs_command("remove", "later")
    assert not Job.objects.filter(public_id="later").exists()


def test_stats_counts_per_queue_the_oldest_waiting_job_and_throughput():
    jobs.Queue().add(name="noop", job_id="old")
    done = jobs.Queue().add(name="noop")
    job_execute(job_id=done._record.pk, worker="w")
    jobs.Queue("solo").add(name="solo_records", data={"path": "/dev/null"})
    out = jobs_command("stats")
    jobs_row = next(line for line in out.splitlines() if line.strip("│ ").startswith("jobs"))
    assert [cell.strip() for cell in jobs_row.strip("│").split("│")] == ["jobs", "1", "0", "0", "1", "0"]
    assert "Oldest waiting job: old (noop), waiting" in out
    one_minute = next(line for line in out.splitlines() if "1 min" in line)
    assert [cell.strip() for cell in one_minute.strip("│").split("│")] == ["1 min", "1", "0", "1.0"]


def test_sweep_runs_one_sweep_now():
    from datetime import timedelta

    from django.utils import timezone

    job = jobs.Queue().add(name="noop", delay=60_000)
    Job.objects.filter(pk=job._record.pk).update(run_at=timezone.now() - timedelta(seconds=1))
    out = jobs_command("sweep")
    assert out.startswith("1 delayed jobs promoted, 0 stalled jobs put back, 0 failed as stalled,")
    assert Job.objects.get(pk=job._record.pk).state == "waiting"
