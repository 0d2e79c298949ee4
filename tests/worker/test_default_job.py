"""The default job function, run as a worker runs it."""

import pytest

import jobs
from jobs.runner import job_execute
from worker.jobs import STEPS

pytestmark = pytest.mark.django_db


def test_the_default_job_reports_progress_and_returns_a_result(monkeypatch):
    seen = []
    monkeypatch.setattr(jobs.JobHandle, "progress", lambda self, value=None: seen.append(value))
    job = jobs.Queue().add({"user_id": 7, "step_seconds": 0})
    assert job_execute(job_id=job.id, worker="w") == "completed"
    assert seen == ["started", 20, 40, 60, 80, 100]
    assert job.reload().return_value == {"ok": True, "steps": STEPS, "data": {"user_id": 7, "step_seconds": 0}}
