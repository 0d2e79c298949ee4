"""The JOBS system check."""

from jobs.checks import check_jobs_settings


def ids(settings_value, settings):
    settings.JOBS = settings_value
    return [error.id for error in check_jobs_settings()]


def test_the_projects_settings_pass(settings):
    assert check_jobs_settings() == []


def test_bad_settings_are_reported(settings):
    assert ids([], settings) == ["jobs.E001"]
    assert ids({"QUEU": "x"}, settings) == ["jobs.E002"]
    assert ids({"QUEUE": ""}, settings) == ["jobs.E003"]
    assert ids({"OWNER_RESOLVER": "nowhere.at_all"}, settings) == ["jobs.E004"]
    assert ids({"SWEEP_INTERVAL": -1}, settings) == ["jobs.E005"]
    assert ids({"MAX_ATTEMPTS": 0}, settings) == ["jobs.E006"]
    assert ids({"OWNER_NAMES": "nowhere.at_all"}, settings) == ["jobs.E011"]
    assert ids({"OWNER_NAMES": 7}, settings) == ["jobs.E011"]
    assert ids({"PREPARED_STATEMENTS": "false"}, settings) == ["jobs.E015"]


def test_pickle_is_refused(settings):
    settings.CELERY_TASK_SERIALIZER = "pickle"
    assert [e.id for e in check_jobs_settings()] == ["jobs.E007"]


def test_a_pool_that_cannot_stop_jobs_on_time_is_flagged(settings):
    settings.CELERY_WORKER_POOL = "threads"
    assert [(e.id, e.msg) for e in check_jobs_settings()] == [
        ("jobs.W001", "CELERY_WORKER_POOL 'threads' cannot stop a job at its opts.timeout: jobs with opts.timeout fail at once on it.")
    ]
    settings.CELERY_WORKER_POOL = "prefork"
    assert check_jobs_settings() == []


def test_a_worker_that_would_open_a_connection_per_job_is_flagged(settings):
    del settings.CELERY_DB_REUSE_MAX
    assert [e.id for e in check_jobs_settings()] == ["jobs.W002"]
