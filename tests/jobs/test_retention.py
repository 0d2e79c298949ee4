"""Retention: when finished jobs may go (removeOnComplete, removeOnFail, the installation's defaults), and the clean."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

import jobs
from jobs import services
from jobs.checks import check_jobs_settings
from jobs.models import Job
from jobs.retention import jobs_clean, jobs_clean_older
from jobs.runner import job_execute

pytestmark = pytest.mark.django_db


def finish(name="noop", owner="", queue=None, **opts):
    job = jobs.Queue(queue).add(name=name, owner=owner, **opts) if not opts.get("raw") else None
    job_execute(job_id=job._record.pk, worker="w")
    return Job.objects.get(pk=job._record.pk)


def add_with(opts, name="noop", owner="", queue="jobs"):
    job = services.job_create(name=name, opts=opts, owner=owner, queue=queue)
    job_execute(job_id=job.pk, worker="w")
    return Job.objects.get(pk=job.pk)


def later(**delta):
    return timezone.now() + timedelta(**delta)


def test_a_completed_job_is_kept_a_week_by_default_and_a_failed_one_a_month():
    done, failed = add_with({}), add_with({}, name="fails")
    assert done.remove_after == done.finished_on + timedelta(days=7) and done.keep_last is None
    assert failed.remove_after == failed.finished_on + timedelta(days=30)
    assert jobs_clean(now=later(days=6)).expired == 0
    assert jobs_clean(now=later(days=7, seconds=1)).expired == 1
    assert list(Job.objects.values_list("pk", flat=True)) == [failed.pk]
    assert jobs_clean(now=later(days=30, seconds=1)).expired == 1
    assert Job.objects.count() == 0


def test_remove_on_complete_true_removes_it_at_the_next_clean_and_false_keeps_it_for_ever():
    gone = add_with({"removeOnComplete": True})
    kept = add_with({"removeOnComplete": False})
    assert gone.remove_after == gone.finished_on and kept.remove_after is None
    assert jobs_clean().expired == 1
    jobs_clean(now=later(days=3650))
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]


def test_an_age_counts_from_the_finish():
    job = add_with({"removeOnComplete": {"age": 3600}})
    assert job.remove_after == job.finished_on + timedelta(hours=1)
    assert jobs_clean(now=later(minutes=59)).expired == 0
    assert jobs_clean(now=later(minutes=61)).expired == 1


def test_a_count_keeps_the_newest_of_the_owners_queue():
    mine = [add_with({"removeOnComplete": 2}, owner="account:1") for _ in range(5)]
    theirs = [add_with({"removeOnComplete": 2}, owner="account:2") for _ in range(3)]
    other_queue = [add_with({"removeOnComplete": 2}, owner="account:1", queue="reports") for _ in range(2)]
    report = jobs_clean()
    assert report.over_count == 3 + 1
    left = set(Job.objects.values_list("pk", flat=True))
    assert left == {mine[3].pk, mine[4].pk, theirs[1].pk, theirs[2].pk, *(job.pk for job in other_queue)}


def test_a_failed_job_follows_remove_on_fail_not_remove_on_complete():
    failed = add_with({"removeOnComplete": True, "removeOnFail": {"age": 60}}, name="fails")
    assert failed.remove_after == failed.finished_on + timedelta(seconds=60)
    assert jobs_clean().expired == 0


def test_a_retried_job_is_no_longer_due():
    failed = add_with({"removeOnFail": True}, name="fails")
    services.job_retry(owner="", job_id=failed.public_id)
    assert jobs_clean(now=later(days=365)) == type(jobs_clean())(expired=0, over_count=0)
    job = Job.objects.get(pk=failed.pk)
    assert (job.state, job.remove_after, job.keep_last) == ("waiting", None, None)


def test_the_clean_goes_in_batches_until_none_is_due():
    for _ in range(5):
        add_with({"removeOnComplete": True})
    assert jobs_clean(batch=2).expired == 5
    assert Job.objects.count() == 0


def test_jobs_that_have_not_finished_are_never_removed():
    waiting = jobs.Queue().add(name="noop")
    Job.objects.filter(pk=waiting._record.pk).update(remove_after=later(days=-1), keep_last=0)
    assert jobs_clean(now=later(days=1)) == type(jobs_clean())(expired=0, over_count=0)
    assert Job.objects.filter(pk=waiting._record.pk).exists()


def test_clean_older_removes_one_state_whatever_the_jobs_asked():
    kept = add_with({"removeOnComplete": False})
    failed = add_with({}, name="fails")
    assert jobs_clean_older(state="completed", before=later(seconds=1), batch=1) == 1
    assert list(Job.objects.values_list("pk", flat=True)) == [failed.pk] and kept.pk != failed.pk


@pytest.mark.parametrize("value", ["forever", -1, {"age": "1"}, {}])
def test_a_bad_installation_default_fails_the_checks(settings, value):
    settings.JOBS = {**settings.JOBS, "REMOVE_ON_COMPLETE": value}
    assert [error.id for error in check_jobs_settings()] == ["jobs.E010"]


def jobs_command(*args):
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_the_jobs_clean_command_applies_the_policies_or_an_age_for_one_state():
    add_with({"removeOnComplete": True})
    add_with({"removeOnComplete": False})
    assert "Removed 1 finished jobs past their age and 0 beyond their count." in jobs_command("clean")
    assert "Removed 1 completed jobs that finished more than 0s ago." in jobs_command("clean", "--state", "completed", "--older-than", "0s")
    assert Job.objects.count() == 0
    with pytest.raises(CommandError, match="--older-than needs --state completed or --state failed."):
        jobs_command("clean", "--older-than", "7d")
    with pytest.raises(CommandError, match="'soon' is not a duration such as 90s, 15m, 12h or 7d."):
        jobs_command("clean", "--state", "failed", "--older-than", "soon")


def test_the_api_takes_and_shows_the_options(api_key):
    from tests.clients import bearer_client

    client = bearer_client(api_key("alice")[1])
    body = client.post("/api/job", {"name": "noop", "opts": {"removeOnComplete": 100, "removeOnFail": {"age": 60, "count": 5}}}, format="json").json()
    assert (body["opts"]["removeOnComplete"], body["opts"]["removeOnFail"]) == (100, {"age": 60, "count": 5})
    bad = client.post("/api/job", {"name": "noop", "opts": {"removeOnComplete": "yes"}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "opts.removeOnComplete"


def test_plain_celery_results_expire_through_beats_daily_cleanup(settings):
    from django_celery_beat.schedulers import DatabaseScheduler

    from gravity.celery import app

    assert app.conf.result_expires == 24 * 3600 and not app.backend.supports_autoexpire
    assert "celery.backend_cleanup" in DatabaseScheduler(app=app, lazy=False).schedule
