"""Reading a job's failures back as exceptions: the class each stored traceback names."""

import traceback

import pytest

from jobs import services
from jobs.failures import Failure, exception_path, latest_failure
from jobs.models import Job
from jobs.runner import job_execute


class Outer:
    class InnerError(Exception):
        pass


def formatted(raise_it):
    try:
        raise_it()
    except Exception:
        return traceback.format_exc()
    raise AssertionError("did not raise")


def chained():
    try:
        raise KeyError("first")
    except KeyError:
        raise ConnectionError("second\nwith a second line")  # noqa: B904 - the chain is the point


def raise_(exc):
    def raise_it():
        raise exc

    return raise_it


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (formatted(raise_(ValueError("x: y"))), "builtins.ValueError"),
        (formatted(raise_(ValueError())), "builtins.ValueError"),
        (formatted(raise_(Outer.InnerError("nested"))), "tests.jobs.test_failures.Outer.InnerError"),
        (formatted(chained), "builtins.ConnectionError"),
        ("", None),
        ("Job timed out and was killed after 2.0 s (opts.timeout).", None),
        ("Traceback (most recent call last):\n  File \"x\", line 1\n'quoted': not a class\n", None),
    ],
)
def test_the_class_is_read_from_the_last_exception_of_a_traceback(text, path):
    assert exception_path(text) == path


@pytest.mark.django_db
def test_latest_failure_is_the_reason_with_its_traceback_or_none():
    done = services.job_create(name="noop")
    job_execute(job_id=done.pk, worker="w")
    assert latest_failure(Job.objects.get(pk=done.pk)) is None
    failed = services.job_create(name="fails", data={"message": "card declined"})
    job_execute(job_id=failed.pk, worker="w")
    failure = latest_failure(Job.objects.get(pk=failed.pk))
    assert (failure.exception_path, failure.message) == ("builtins.RuntimeError", "card declined")
    assert failure.traceback.endswith("RuntimeError: card declined\n")


@pytest.mark.django_db
def test_a_job_the_sweep_failed_stands_as_job_failed_without_a_traceback():
    job = services.job_create(name="fails")
    Job.objects.filter(pk=job.pk).update(
        state="failed", failed_reason=services.STALLED_REASON, stacktrace=["Traceback (most recent call last):\n  x\nKeyError: 'older'\n"]
    )
    assert latest_failure(Job.objects.get(pk=job.pk)) == Failure(
        exception_path="jobs.errors.JobFailed", message="job stalled more than allowable limit", traceback=""
    )
