"""Every log line written while a job runs carries its id and name."""

import io
import logging

import pytest

from jobs import services
from jobs.logs import JobContextFilter
from jobs.runner import job_execute
from tests.jobs.test_runner import registered

pytestmark = pytest.mark.django_db


@pytest.fixture
def lines():
    """What the project's console handler would print (its filter and format), from every logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(JobContextFilter())
    handler.setFormatter(logging.Formatter("%(name)s%(job)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: out.getvalue().splitlines()
    root.removeHandler(handler)


def test_lines_from_inside_a_job_say_which_job_and_others_do_not(lines):
    def talks(job):
        logging.getLogger("myapp.reports").warning("building the report")
        return None

    with registered("talks", talks):
        job = services.job_create(name="talks", opts={"jobId": "report-7"})
        logging.getLogger("myapp.reports").warning("before")
        job_execute(job_id=job.pk, worker="w")
        logging.getLogger("myapp.reports").warning("after")
    assert [line for line in lines() if line.startswith("myapp.reports")] == [
        "myapp.reports: before",
        "myapp.reports [job=report-7 name=talks]: building the report",
        "myapp.reports: after",
    ]


def test_the_runners_own_failure_line_carries_the_job(lines):
    job = services.job_create(name="fails")
    job_execute(job_id=job.pk, worker="w")
    assert f"jobs.runner [job={job.public_id} name=fails]: Job {job.pk} (fails) failed" in lines()
