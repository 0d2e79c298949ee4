"""`manage.py jobs`: list, show, add (and wait for), retry, promote and remove jobs, and see the queue's stats."""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobs import selectors, services
from jobs.display import age, is_number, run_time, shown
from jobs.errors import JobError
from jobs.models import Job, JobState

STATE_STYLES = {"waiting": "cyan", "delayed": "blue", "active": "yellow", "completed": "green", "failed": "red"}
FINISHED = (JobState.COMPLETED, JobState.FAILED)


def parse_age(text: str) -> timedelta:
    """'90s', '15m', '12h', '7d' (or a plain number of seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError:
        raise CommandError(f"{text!r} is not a duration such as 90s, 15m, 12h or 7d.") from None


class Command(BaseCommand):
    help = "Operate the job queue: list, show, add [--wait], retry, promote, remove, stats, sweep, clean."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

        listing = commands.add_parser("list", help="Jobs, newest first.")
        listing.add_argument("--state", action="append", choices=JobState.values, help="Repeat for several.")
        listing.add_argument("--name")
        listing.add_argument("--owner", help='An account key such as account:7; "" for the system\'s jobs.')
        listing.add_argument("--limit", type=int, default=30)

        show = commands.add_parser("show", help="One job, as the API shows it.")
        show.add_argument("id", help="The job's id (its internal id, or the id its owner knows it by).")
        show.add_argument("--owner")

        add = commands.add_parser("add", help="Add a job (any job function, internal ones included).")
        add.add_argument("name")
        add.add_argument("--data", default="{}", help="The job's data, a JSON object.")
        add.add_argument("--owner", default="", help='The account the job is for (default: "", the system).')
        add.add_argument("--delay", type=int, help="ms")
        add.add_argument("--attempts", type=int)
        add.add_argument("--priority", type=int)
        add.add_argument("--job-id")
        add.add_argument("--wait", action="store_true", help="Show its progress until it finishes; exit 1 if it failed.")
        add.add_argument("--timeout", type=float, default=0, help="With --wait: give up after this many seconds.")

        for verb, text in (("retry", "Run a failed job again."), ("promote", "Run a delayed job now."),
                           ("remove", "Delete a job that has not started.")):
            sub = commands.add_parser(verb, help=text)
            sub.add_argument("id")
            sub.add_argument("--owner")

        commands.add_parser("stats", help="Counts per state and queue, the oldest waiting job, recent throughput.")
        commands.add_parser("sweep", help="Run one sweep now (every worker already sweeps each SWEEP_INTERVAL).")

        clean = commands.add_parser("clean", help="Remove finished jobs: those their retention says are due, or one state's older ones.")
        clean.add_argument("--state", choices=[JobState.COMPLETED, JobState.FAILED])
        clean.add_argument("--older-than", help="With --state: remove those that finished longer ago, e.g. 7d, whatever they asked to keep.")

    def handle(self, *args, command: str, **options):
        self.console = Console(file=self.stdout, width=max(100, shutil.get_terminal_size((120, 24)).columns), soft_wrap=False)
        try:
            getattr(self, f"do_{command}")(**options)
        except (JobError, LookupError) as exc:
            raise CommandError(str(exc)) from None

    # -- the subcommands -----------------------------------------------------------------------

    def do_list(self, *, state, name, owner, limit, **_):
        jobs = selectors.jobs_list(owner=owner, states=state, name=name).order_by("-created_at", "-id")[:limit]
        table = Table(title=f"Jobs, newest first (at most {limit})", title_justify="left")
        for column in ("id", "owner", "name", "state", "progress", "attempts", "age", "run time"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            table.add_row(
                job.public_id, job.owner or "(system)", job.name, f"[{STATE_STYLES[job.state]}]{job.state}[/]",
                shown(job.progress), f"{job.attempts_made}/{job.attempts}", age(job.created_at), run_time(job),
            )
        self.console.print(table)

    def do_show(self, *, id, owner, **_):
        job = selectors.job_find(ref=id, owner=owner)
        self.console.print_json(json.dumps({**selectors.job_to_json(job), "owner": job.owner, "queue": job.queue}))

    def do_add(self, *, name, data, owner, delay, attempts, priority, job_id, wait, timeout, **_):
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise CommandError(f"--data is not JSON: {exc}.") from None
        opts = {key: value for key, value in {"delay": delay, "attempts": attempts, "priority": priority, "jobId": job_id}.items() if value is not None}
        job = services.job_create(name=name, data=payload, opts=opts, owner=owner)
        self.console.print(f"Added job [bold]{job.public_id}[/] ({job.name}, {job.state}).")
        if wait:
            self.wait_for(job, timeout)

    def do_retry(self, *, id, owner, **_):
        job = selectors.job_find(ref=id, owner=owner)
        job = services.job_retry(owner=job.owner, job_id=job.public_id)
        self.console.print(f"Job [bold]{job.public_id}[/] is waiting to run again.")

    def do_promote(self, *, id, owner, **_):
        job = selectors.job_find(ref=id, owner=owner)
        job = services.job_promote(owner=job.owner, job_id=job.public_id)
        self.console.print(f"Job [bold]{job.public_id}[/] is waiting to run now.")

    def do_remove(self, *, id, owner, **_):
        job = selectors.job_find(ref=id, owner=owner)
        services.job_remove(owner=job.owner, job_id=job.public_id)
        self.console.print(f"Job [bold]{job.public_id}[/] removed.")

    def do_stats(self, **_):
        per_queue = selectors.job_counts(owner=None, by="queue")
        table = Table(title="Jobs per queue and state", title_justify="left")
        table.add_column("queue")
        for state in JobState.values:
            table.add_column(state, justify="right", style=STATE_STYLES[state])
        for queue, counts in per_queue.items():
            table.add_row(queue, *(str(counts[state]) for state in JobState.values))
        if not per_queue:
            table.add_row("(none)", *("0" for _ in JobState.values))
        self.console.print(table)
        oldest = selectors.oldest_waiting()
        waited = f"{oldest.public_id} ({oldest.name}), waiting {age(oldest.run_at)}" if oldest else "none"
        self.console.print(f"Oldest waiting job: {waited}")
        rates = Table(title="Throughput", title_justify="left")
        for column in ("last", "completed", "failed", "per minute"):
            rates.add_column(column, justify="right")
        now = timezone.now()
        for minutes in (1, 5, 15, 60):
            done = selectors.throughput(since=now - timedelta(minutes=minutes))
            total = done[JobState.COMPLETED] + done[JobState.FAILED]
            rates.add_row(f"{minutes} min", str(done[JobState.COMPLETED]), str(done[JobState.FAILED]), f"{total / minutes:.1f}")
        self.console.print(rates)

    def do_sweep(self, **_):
        from jobs.sweep import jobs_sweep

        report = jobs_sweep()
        self.console.print(
            f"{report.promoted} delayed jobs promoted, {report.recovered} stalled jobs put back, "
            f"{report.stalled_out} failed as stalled, {report.sent} messages sent."
        )

    def do_clean(self, *, state, older_than, **_):
        from jobs.retention import jobs_clean, jobs_clean_older

        if older_than is None:
            report = jobs_clean(budget=float("inf"))
            self.console.print(f"Removed {report.expired} finished jobs past their age and {report.over_count} beyond their count.")
            return
        if state is None:
            raise CommandError("--older-than needs --state completed or --state failed.")
        age = parse_age(older_than)
        removed = jobs_clean_older(state=state, before=timezone.now() - age)
        self.console.print(f"Removed {removed} {state} jobs that finished more than {older_than} ago.")

    # -- waiting for a job ---------------------------------------------------------------------

    def wait_for(self, job: Job, timeout: float) -> None:
        """Poll the job's row and show its progress until it finishes; exit non-zero if it failed."""
        deadline = time.monotonic() + timeout if timeout else None
        columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            bar = progress.add_task(f"{job.public_id} {job.state}", total=100, note="")
            while True:
                job.refresh_from_db()
                numeric = is_number(job.progress)
                progress.update(
                    bar, description=f"{job.public_id} {job.state}", completed=min(100, job.progress) if numeric else 0,
                    note="" if numeric or job.progress in (0, None) else shown(job.progress),
                )
                if job.state in FINISHED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"Job {job.public_id!r} is still {job.state} after {timeout:g} s.")
                time.sleep(0.2)
        if job.state == JobState.FAILED:
            raise CommandError(f"Job {job.public_id!r} failed: {job.failed_reason}")
        self.console.print(f"Job [bold]{job.public_id}[/] completed: {json.dumps(job.return_value)}")
