"""A worker's life: its identity, putting back only its own jobs, its pool processes' SIGTERM, its pool."""

import signal
import time
from types import SimpleNamespace

import pytest
from django.db import connections

from jobs import messages, services, worker
from jobs.models import Job
from jobs.runner import job_execute, job_fail_killed
from jobs.worker import COLD, RUNNING, WARM, Worker, pool_name

pytestmark = pytest.mark.django_db


@pytest.fixture
def current(monkeypatch):
    """Make `made` the worker of this process, as worker_init would."""

    def make(**kwargs) -> Worker:
        made = Worker(nodename=kwargs.pop("nodename", "w1@host"), **kwargs)
        monkeypatch.setattr(worker, "_current", made)
        return made

    return make


def test_each_start_has_its_own_identity_even_with_the_same_hostname_and_pid():
    first, second = Worker(nodename="w@box"), Worker(nodename="w@box")
    assert first.identity != second.identity
    assert first.identity.startswith("w@box:") and first.process_name(7) == f"{first.identity}:7"


def test_a_worker_puts_back_only_its_own_jobs():
    # Two containers: same hostname, same PID (1), so the same nodename and process names but for the identity.
    mine, theirs = Worker(nodename="w@box"), Worker(nodename="w@box")
    my_job, their_job = services.job_create(name="noop"), services.job_create(name="noop")
    services.job_claim(job_id=my_job.pk, worker=mine.process_name(2))
    services.job_claim(job_id=their_job.pk, worker=theirs.process_name(2))
    assert mine.release_jobs() == [2]
    assert Job.objects.get(pk=my_job.pk).state == "waiting"
    assert Job.objects.get(pk=their_job.pk).state == "active"


def test_putting_back_is_fenced_by_the_lock_of_the_claim_it_undoes(monkeypatch):
    me = Worker(nodename="w@box")
    job = services.job_create(name="noop")
    services.job_claim(job_id=job.pk, worker=me.process_name(2))
    real_release = services.job_release

    def finished_meanwhile(*, job_id, token):
        # the job completes (and is claimed again elsewhere) between the read and the release
        Job.objects.filter(pk=job_id).update(lock_token="a-later-claim")
        return real_release(job_id=job_id, token=token)

    monkeypatch.setattr(services, "job_release", finished_meanwhile)
    assert me.release_jobs() == []
    assert (Job.objects.get(pk=job.pk).state, Job.objects.get(pk=job.pk).lock_token) == ("active", "a-later-claim")


def test_jobs_are_claimed_under_the_name_of_the_pool_process(current):
    me = current()
    job = services.job_create(name="noop")
    assert job_execute(job_id=job.pk) == "completed"
    assert Job.objects.get(pk=job.pk).worker == me.process_name()


def test_a_hard_timeout_fails_only_the_claim_of_the_killed_process(current):
    me = current()
    job = services.job_create(name="sleeps", opts={"timeout": 1000})
    services.job_claim(job_id=job.pk, worker=me.process_name(41))
    assert job_fail_killed(job_id=job.pk, pool_pid=42, seconds=3.0) is None
    assert Job.objects.get(pk=job.pk).state == "active"
    assert job_fail_killed(job_id=job.pk, pool_pid=41, seconds=3.0) == "failed"
    job.refresh_from_db()
    assert (job.state, job.failed_reason) == ("failed", "Job timed out and was killed after 3.0 s (opts.timeout).")


@pytest.mark.parametrize(
    ("pool", "name", "on_time"),
    [
        (None, "prefork", True),
        ("prefork", "prefork", True),
        ("threads", "threads", False),
        ("solo", "solo", False),
    ],
)
def test_only_a_prefork_pool_stops_jobs_on_time(pool, name, on_time):
    assert (pool_name(pool), Worker(nodename="w@h", pool=pool).stops_jobs_on_time) == (name, on_time)


def test_a_pool_that_cannot_stop_jobs_on_time_fails_jobs_with_a_timeout_at_once(current, tmp_path):
    current(pool="threads")
    marker = tmp_path / "runs.txt"
    timed = services.job_create(name="records", data={"path": str(marker)}, opts={"timeout": 1000, "attempts": 3})
    untimed = services.job_create(name="records", data={"path": str(marker)})
    assert job_execute(job_id=timed.pk) == "failed"
    assert job_execute(job_id=untimed.pk) == "completed"
    timed.refresh_from_db()
    assert (timed.state, timed.failed_reason) == (
        "failed",
        "opts.timeout cannot be enforced by this worker's threads pool; run jobs with a timeout on a prefork worker.",
    )
    assert marker.read_text().split()[0] == untimed.pk


def test_a_worker_warns_at_start_when_its_pool_cannot_stop_jobs_on_time(settings, caplog):
    settings.JOBS = {**settings.JOBS, "SWEEP_INTERVAL": 0}
    with caplog.at_level("WARNING", logger="jobs.worker"):
        Worker(nodename="w@h", pool="threads").ready()
        Worker(nodename="w@h", pool="prefork").ready()
    assert caplog.messages == [
        "This worker's threads pool cannot stop a job at its opts.timeout: jobs with opts.timeout that it takes "
        "fail at once. Run them on a prefork worker."
    ]


class Killed(Exception):
    pass


@pytest.fixture
def pool_process(monkeypatch):
    """A worker as one of its pool processes sees it, whose SIGTERM handler before ours raises Killed."""
    me = Worker(nodename="w@h")
    me.pool_process_started()

    def billiards(signum, frame):
        raise Killed(signum)

    installed = {signal.SIGTERM: billiards}
    monkeypatch.setattr(signal, "getsignal", installed.get)
    monkeypatch.setattr(signal, "signal", installed.__setitem__)
    me.guard_sigterm()
    assert installed[signal.SIGTERM] == me._on_sigterm
    return me


def test_only_a_pool_process_guards_its_sigterm(monkeypatch):
    installed = {signal.SIGTERM: signal.SIG_DFL}
    monkeypatch.setattr(signal, "getsignal", installed.get)
    monkeypatch.setattr(signal, "signal", installed.__setitem__)
    Worker(nodename="w@h").guard_sigterm()  # the main process of a threads or solo worker
    assert installed[signal.SIGTERM] == signal.SIG_DFL


def test_a_pool_process_leaves_the_sigterm_sent_to_every_process_to_the_warm_shutdown(pool_process):
    pool_process._shutdown.set(WARM, time.monotonic())
    pool_process._on_sigterm(signal.SIGTERM, None)  # the platform's SIGTERM: left to the main process
    with pytest.raises(Killed):
        pool_process._on_sigterm(signal.SIGTERM, None)  # a second one: the main process terminates it


def test_a_pool_process_obeys_a_sigterm_of_a_cold_shutdown(pool_process):
    pool_process._shutdown.set(COLD)
    with pytest.raises(Killed):
        pool_process._on_sigterm(signal.SIGTERM, None)


def test_a_pool_process_obeys_a_sigterm_long_after_the_warm_shutdown_began(pool_process):
    pool_process._shutdown.set(WARM, time.monotonic() - 5)
    with pytest.raises(Killed):
        pool_process._on_sigterm(signal.SIGTERM, None)


def test_a_pool_process_obeys_a_sigterm_sent_to_it_alone(pool_process):
    pool_process._shutdown.set(RUNNING)
    started = time.monotonic()
    with pytest.raises(Killed):
        pool_process._on_sigterm(signal.SIGTERM, None)
    # it waited a moment for the main process to start a warm shutdown, in case the signal was for all
    assert 0.4 < time.monotonic() - started < 2


def test_only_a_pool_processs_notes_linger_for_the_rest_of_a_jobs(monkeypatch):
    """A pool process's notes are its jobs' (claim, finish, message): one round trip; the main process's sweep sends at once."""
    monkeypatch.setattr(messages, "notes", messages.notes_outbox())
    monkeypatch.setattr(worker, "_current", None)
    worker.on_worker_init(SimpleNamespace(hostname="w@h", pool_cls="prefork"))
    assert (messages.notes.deferred, messages.notes.linger) == (True, 0.0)
    monkeypatch.setattr(worker._current, "pool_process_started", lambda: None)
    worker.on_worker_process_init()
    assert (messages.notes.deferred, messages.notes.linger) == (True, messages.NOTES_LINGER)


def test_between_tasks_a_worker_closes_only_old_or_broken_connections_and_never_an_eager_callers(monkeypatch):
    closed = []
    monkeypatch.setattr(worker, "close_old_connections", lambda: closed.append(True))
    worker.on_task_boundary(sender=SimpleNamespace(request=SimpleNamespace(is_eager=False)))
    assert closed == [True]
    worker.on_task_boundary(sender=SimpleNamespace(request=SimpleNamespace(is_eager=True)))
    assert closed == [True]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("task, checked", [("jobs.run_job", False), ("some.other_task", True)])
def test_around_a_jobs_run_a_kept_connection_is_not_checked_first_around_any_other_task_it_is(monkeypatch, task, checked):
    """CONN_HEALTH_CHECKS: Django checks a kept connection (SELECT 1) before its first use in a request; a job's claim needs no check."""
    db = connections["default"]
    assert db.settings_dict["CONN_HEALTH_CHECKS"]
    Job.objects.exists()  # the connection a worker keeps from its previous job
    checks = []
    monkeypatch.setattr(db, "is_usable", lambda: checks.append(True) or True)
    worker.on_task_boundary(sender=SimpleNamespace(name=task, request=SimpleNamespace(is_eager=False)))
    Job.objects.exists()
    assert db.connection is not None and len(checks) == (1 if checked else 0)


def test_a_pool_process_that_stops_sends_its_last_notes_first(monkeypatch):
    """billiard ends a pool process with os._exit (no exit handlers): Celery's worker_process_shutdown is the last word."""
    from celery.signals import worker_process_shutdown

    flushed = []
    monkeypatch.setattr(messages, "notes", SimpleNamespace(flush=lambda: flushed.append(True)))
    worker_process_shutdown.send(sender="w@h", pid=1, exitcode=0)
    assert flushed == [True]
