"""The benchmark (`./dev bench`): gravity-jobs against raw Celery, side by side in one run, on one database.

It starts its own redis-server, celery workers and gunicorn, runs each scenario several times with
the sides interleaved, prints a Markdown table of medians, ranges and ratios, and writes JSON to
`.artifacts/bench-<database>.json`. `python -m devtools.bench report` turns the JSON files of a run
into the tables of docs/performance.md. The database is DATABASE_URL's, else a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts"
CONCURRENCY = 2


# The parts of a run, in their order; --only picks some.
PARTS = ("add", "end-to-end", "drain", "latency", "http", "reads")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Bench:
    """One run of every scenario on one database."""

    def __init__(self, workdir: Path, *, n: int, runs: int, quick: bool):
        self.workdir, self.n, self.runs, self.quick = workdir, n, runs, quick
        self.results: dict[str, dict[str, list[float]]] = {}
        from devtools import redis as dev_redis

        self.redis_port = dev_redis.free_port()
        self.redis = dev_redis.start(self.redis_port, workdir / "redis")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.results_url = f"redis://127.0.0.1:{self.redis_port}/1"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "devtools.bench_settings", "REDIS_JOB_URL": self.redis_url,
                    "DATABASE_URL": os.environ["DATABASE_URL"], "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from accounts.services import api_key_create, account_for_user
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:6]}")
        _, self.key = api_key_create(user=user, scopes=["job.create", "job.read", "job.update", "job.delete"])
        self.owner = f"account:{account_for_user(user).pk}"

    def record(self, scenario: str, side: str, value: float) -> None:
        self.results.setdefault(scenario, {}).setdefault(side, []).append(value)
        print(f"  {scenario:<34} {side:<28} {value:>12.1f}", flush=True)

    # -- processes -------------------------------------------------------------------------------

    @contextmanager
    def worker(self, result_backend: str = "django-db") -> Iterator[subprocess.Popen]:
        """A prefork worker (CONCURRENCY processes) on the jobs queue, with raw Celery's result store `result_backend`."""
        log = self.workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        env = {**self.env, "BENCH_RESULT_BACKEND": result_backend}
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "--concurrency", str(CONCURRENCY), "--without-mingle", "--without-gossip",
             "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait(lambda: b" ready." in log.read_bytes(), 60, f"the worker ({log})")
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    @contextmanager
    def web(self) -> Iterator[tuple[str, subprocess.Popen]]:
        """gunicorn as the Procfile runs it: 2 uvicorn processes, 4 threads each for the sync views."""
        from devtools.redis import free_port

        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "gravity.asgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--log-level", "warning"],
            cwd=ROOT, env=self.env, stdout=open(self.workdir / "web.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import requests

        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/job/x", timeout=1).status_code == 401
            except (requests.ConnectionError, requests.Timeout):
                return False  # not listening yet, or a worker still loading the app

        try:
            wait(answers, 60, "gunicorn")
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)

    def clean(self) -> None:
        """Empty the job and result tables and Redis between runs, so every run starts alike."""
        import redis
        from django_celery_results.models import TaskResult

        from jobs.models import Job

        Job.objects.all().delete()
        TaskResult.objects.all().delete()
        redis.Redis.from_url(self.redis_url).flushall()

    # -- counting what finished -------------------------------------------------------------------

    def finished_ours(self) -> int:
        from jobs.models import Job

        return Job.objects.filter(name="bench.noop", state="completed").count()

    def finished_celery(self, backend: str) -> int:
        if backend == "django-db":
            from django_celery_results.models import TaskResult

            return TaskResult.objects.filter(status="SUCCESS").count()
        import redis

        return redis.Redis.from_url(self.results_url).dbsize()

    # -- the scenarios ----------------------------------------------------------------------------

    def add_ours(self) -> float:
        import jobs

        queue = jobs.Queue()
        started = time.perf_counter()
        for _ in range(self.n):
            queue.add(name="bench.noop")
        return self.n / (time.perf_counter() - started)

    def add_bulk_ours(self, count: int | None = None) -> float:
        """Jobs per second of one Queue.add_bulk of `count` (n) jobs: one transaction, pipelined publishes."""
        import jobs

        count = count or self.n
        started = time.perf_counter()
        jobs.Queue().add_bulk([{"name": "bench.noop"}] * count)
        return count / (time.perf_counter() - started)

    def add_celery(self) -> float:
        from devtools.bench_tasks import noop_task

        started = time.perf_counter()
        for _ in range(self.n):
            noop_task.delay()
        return self.n / (time.perf_counter() - started)

    def adder(self, side: str) -> Callable[[], float]:
        return {"ours": self.add_ours, "ours, add_bulk": self.add_bulk_ours}.get(side, self.add_celery)

    def end_to_end(self, side: str) -> tuple[float, float]:
        """Jobs per second from the first add to the last finish with the worker running; and the worker's peak RSS (MB)."""
        backend = BACKENDS[side] or self.results_url
        with self.worker(backend) as process, PeakRSS(process.pid) as rss:
            started = time.perf_counter()
            self.adder(side)()
            done = self.finished_ours if side.startswith("ours") else (lambda: self.finished_celery(backend))
            wait(lambda: done() >= self.n, 600, f"{self.n} {side} tasks to finish", interval=0.02)
            return self.n / (time.perf_counter() - started), rss.peak_mb

    def drain(self, side: str) -> float:
        """Jobs per second for a worker started on a full queue, from ready to the last finish."""
        backend = BACKENDS[side] or self.results_url
        self.adder(side)()
        done = self.finished_ours if side.startswith("ours") else (lambda: self.finished_celery(backend))
        with self.worker(backend):
            started = time.perf_counter()
            wait(lambda: done() >= self.n, 600, f"{self.n} queued {side} tasks to drain", interval=0.02)
            return self.n / (time.perf_counter() - started)

    def bull(self, bulk: int) -> None:
        """Bull 4 (Node) on the same Redis, for scale: add one by one, addBulk, a drain with concurrency 2; nothing without node."""
        script = ROOT / "devtools" / "bull" / "bench.js"
        if not (ROOT / "devtools" / "bull" / "node_modules" / "bull").is_dir():
            return
        self.clean()
        out = subprocess.run(["node", str(script), self.redis_url, str(self.n), str(bulk)],
                             capture_output=True, text=True, check=True, timeout=600).stdout
        rates = json.loads(out)
        self.record("add one by one /s", "Bull 4 (Node)", rates["add"])
        self.record("add_bulk of 10,000 /s", "Bull 4 addBulk (Node)", rates["addBulk"])
        self.record("drain /s", "Bull 4 (Node, concurrency 2)", rates["drain"])

    def latencies(self, count: int) -> dict[str, float]:
        """Enqueue-to-start and enqueue-to-finish of jobs added one at a time to an idle worker (ms)."""
        import jobs
        from jobs.models import Job

        starts, finishes = [], []
        with self.worker():
            for _ in range(count):
                handle = jobs.Queue().add(name="bench.noop")
                row = Job.objects.filter(pk=handle._record.pk)
                wait(lambda: row.filter(state="completed").exists(), 30, "a job to finish", interval=0.001)
                created, processed, finished = row.values_list("created_at", "processed_on", "finished_on").get()
                starts.append((processed - created) / timedelta(milliseconds=1))
                finishes.append((finished - created) / timedelta(milliseconds=1))
        return {f"{what} {p}": percentile(values, p) for what, values in (("start", starts), ("finish", finishes)) for p in (50, 95, 99)}

    def http(self, seconds: int) -> dict[str, float]:
        """Requests per second of POST /api/job and of the minimal insert endpoint, under wrk (2 threads, 8 connections)."""
        rates: dict[str, list[float]] = {"POST /api/job": [], "minimal DRF insert": []}
        with self.web() as (base, process), PeakRSS(process.pid) as rss:
            for _ in range(self.runs):
                for side, path in (("POST /api/job", "/api/job"), ("minimal DRF insert", "/bench/insert")):
                    rates[side].append(self.wrk(f"{base}{path}", seconds))
        for side, values in rates.items():
            for value in values:
                self.record("POST requests/s", side, value)
        self.record("web peak RSS MB", "ours (gunicorn 2×4)", rss.peak_mb)
        return {side: median(values) for side, values in rates.items()}

    def wrk(self, url: str, seconds: int) -> float:
        script = self.workdir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.body = \'{"name": "bench.noop", "data": {"n": 1}}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {self.key}"\n'
        )
        out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "-s", str(script), url],
                             capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
        return float(next(line for line in out.splitlines() if line.startswith("Requests/sec:")).split()[1])

    def reads(self, sizes: list[int]) -> None:
        """GET a job, the first page of a listing, the counts and one sweep, with `size` jobs in the table."""
        from django.db import connection
        from django.contrib.auth import get_user_model
        from django.test import Client

        from jobs.models import Job

        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.key}", SERVER_NAME="127.0.0.1")
        staff = Client(SERVER_NAME="127.0.0.1")
        staff.force_login(get_user_model().objects.create_superuser(username=f"bench-staff-{uuid.uuid4().hex[:6]}"))
        admin = "/admin/jobs/job/"
        filled = 0
        for size in sizes:
            filled = fill(self.owner, filled, size)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            some = list(Job.objects.filter(owner=self.owner).values_list("public_id", flat=True)[:50])
            probes: dict[str, Callable[[], object]] = {
                "GET /api/job/<id>": lambda: client.get(f"/api/job/{random.choice(some)}"),
                "GET /api/job?state=failed": lambda: client.get("/api/job?state=failed"),
                # Several states, newest first across them: many jobs in them (10 % of the table), and none.
                "GET /api/job?state=waiting,failed": lambda: client.get("/api/job?state=waiting,failed"),
                "GET /api/job?state=active,delayed": lambda: client.get("/api/job?state=active,delayed"),
                "GET /api/job": lambda: client.get("/api/job"),
                "GET /api/job/counts": lambda: client.get("/api/job/counts"),
                # The admin's list, counted and listed per state (none is active: the empty case).
                "GET /admin/jobs/job/": lambda: staff.get(admin),
                "GET /admin/jobs/job/?state=failed": lambda: staff.get(f"{admin}?state__exact=failed"),
                "GET /admin/jobs/job/?state=completed": lambda: staff.get(f"{admin}?state__exact=completed"),
                "GET /admin/jobs/job/?state=active": lambda: staff.get(f"{admin}?state__exact=active"),
                "one sweep": sweep_once,
            }
            for name, probe in probes.items():
                response = probe()
                assert getattr(response, "status_code", 200) == 200, (name, response)
                timings = []
                for _ in range(30):
                    started = time.perf_counter()
                    probe()
                    timings.append((time.perf_counter() - started) * 1000)
                self.record(f"{name} ms", f"{size:,} jobs", median(timings))

    # -- the whole run ----------------------------------------------------------------------------

    def run(self, only: frozenset[str] = frozenset(PARTS)) -> None:
        """Every part in `only` (PARTS), each run `runs` times with the sides interleaved."""
        sides = ["ours", "celery, django-celery-results", "celery, Redis results"]
        for run in range(self.runs):
            print(f"run {run + 1} of {self.runs}", flush=True)
            if "add" in only:
                for side in sides:
                    self.clean()
                    self.record("add one by one /s", side, self.adder(side)())
                self.clean()
                self.record("add_bulk of 10,000 /s", "ours", self.add_bulk_ours(100 if self.quick else 10_000))
                self.bull(100 if self.quick else 10_000)
            if "end-to-end" in only:
                for side in ["ours", "ours, add_bulk", *sides[1:]]:
                    self.clean()
                    rate, peak = self.end_to_end(side)
                    self.record("end to end /s", side, rate)
                    self.record("worker peak RSS MB", side, peak)
            if "drain" in only:
                for side in ["ours", "ours, add_bulk", *sides[1:]]:
                    self.clean()
                    self.record("drain /s", side, self.drain(side))
        if "latency" in only:
            self.clean()
            for name, value in self.latencies(30 if self.quick else 1000).items():
                self.record("enqueue-to-" + name.split()[0] + " ms", f"p{name.split()[1]}", value)
        if "http" in only:
            self.clean()
            self.http(2 if self.quick else 10)
        if "reads" in only:
            self.clean()
            self.reads([1_000, 5_000] if self.quick else [10_000, 1_000_000])


# Raw Celery's result store per side (None: the run's Redis results database).
BACKENDS = {"ours": "django-db", "ours, add_bulk": "django-db", "celery, django-celery-results": "django-db", "celery, Redis results": None}


def sweep_once() -> object:
    from jobs.sweep import jobs_sweep

    return jobs_sweep()


def fill(owner: str, have: int, want: int) -> int:
    """Add finished and waiting jobs of `owner` until the table holds `want`: 90 % completed, 5 % failed, 5 % waiting."""
    from django.db import connection
    from django.utils import timezone

    from jobs import counts
    from jobs.models import Job

    now = timezone.now()
    batch = []
    for index in range(have, want):
        pk = uuid.uuid4().hex
        state = "failed" if index % 20 == 0 else "waiting" if index % 20 == 1 else "completed"
        created = now - timedelta(seconds=want - index)
        batch.append(Job(
            id=pk, public_id=pk, owner=owner, name="bench.noop", queue="bench-filler", state=state, created_at=created,
            run_at=created, sent_at=now if state == "waiting" else None, processed_on=None if state == "waiting" else created,
            finished_on=None if state == "waiting" else created, attempts_made=1 if state == "failed" else 0,
        ))
        if len(batch) == 10_000:
            Job.objects.bulk_create(batch)
            batch = []
            counts.jobs_counts_fold()  # as the workers' sweeps do, each second
    Job.objects.bulk_create(batch)
    counts.jobs_counts_fold()
    if connection.vendor == "postgresql":
        # The folds' dead rows, vacuumed as autovacuum does within its naptime (migration 0006):
        # reads are timed on a settled table, as ANALYZE settles the statistics.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM jobs_count_change")
    return want


def percentile(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class PeakRSS:
    """Sample the resident memory of a process and its children every 0.2 s; keep the peak (MB)."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._measure()

    def _sample(self) -> None:
        self._measure()
        while not self._stop.wait(0.2):
            self._measure()

    def _measure(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return
        self.peak_mb = max(self.peak_mb, total / 2**20)


def wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- reporting ------------------------------------------------------------------------------------

# (scenario, ours, baseline, target ratio of ours to the baseline; "≤" when smaller is better)
TARGETS = [
    ("end to end /s", "ours", "celery, django-celery-results", 1.0, "≥"),
    ("end to end /s", "ours", "celery, Redis results", 0.6, "≥"),
    ("add one by one /s", "ours", "celery, django-celery-results", 0.7, "≥"),
    ("add_bulk of 10,000 /s", "ours", "Bull 4 addBulk (Node)", 1.0, "≥"),
    ("POST requests/s", "POST /api/job", "minimal DRF insert", 0.9, "≥"),
    ("worker peak RSS MB", "ours", "celery, django-celery-results", 1.1, "≤"),
]


def report(results: dict, database: str) -> str:
    """The Markdown table of one database's results: every value as median (range), then the targets."""
    lines = [f"### {database}", "", "| scenario | side | median | range | runs |", "|---|---|---|---|---|"]
    for scenario, sides in results.items():
        for side, values in sides.items():
            lines.append(f"| {scenario} | {side} | {median(values):,.1f} | {min(values):,.1f}–{max(values):,.1f} | {len(values)} |")
    lines += ["", "| target | ratio | met |", "|---|---|---|"]
    for scenario, ours, baseline, target, sense in TARGETS:
        if scenario in results and ours in results[scenario] and baseline in results[scenario]:
            ratio = median(results[scenario][ours]) / median(results[scenario][baseline])
            met = ratio >= target if sense == "≥" else ratio <= target
            lines.append(f"| {scenario}: {ours} / {baseline} {sense} {target} | {ratio:.2f} | {'yes' if met else 'no'} |")
    p99 = results.get("enqueue-to-start ms", {}).get("p99")
    if p99:
        lines.append(f"| enqueue-to-start p99 ≤ 5 ms | {p99[0]:.1f} ms | {'yes' if p99[0] <= 5 else 'no'} |")
    reads = [s for s in results if s.endswith(" ms") and s.startswith(("GET", "one sweep"))]
    for scenario in reads:
        sizes = list(results[scenario])
        if len(sizes) == 2:
            ratio = median(results[scenario][sizes[1]]) / median(results[scenario][sizes[0]])
            lines.append(f"| {scenario}: {sizes[1]} / {sizes[0]} ≤ 1.5 | {ratio:.2f} | {'yes' if ratio <= 1.5 else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench")
    parser.add_argument("command", nargs="?", default="run", choices=["run", "report"])
    parser.add_argument("--n", type=int, default=5000, help="jobs per throughput scenario (5000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario, sides interleaved (3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that the benchmark works, not a measurement")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"the parts to run, comma-separated, of {','.join(PARTS)} (all)")
    parser.add_argument("--out", type=Path, default=ARTIFACTS, help="where the JSON goes (.artifacts)")
    args = parser.parse_args(argv)
    only = frozenset(part.strip() for part in args.only.split(","))
    if not only <= set(PARTS):
        parser.error(f"--only: unknown parts {', '.join(sorted(only - set(PARTS)))}; known: {', '.join(PARTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "report":
        for path in sorted(args.out.glob("bench-*.json")):
            data = json.loads(path.read_text())
            print(report(data["results"], f"{data['database']} (n={data['n']}, runs={data['runs']}, {data['date']})"))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="gravity-bench-"))
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    database = "PostgreSQL" if os.environ["DATABASE_URL"].startswith("postgres") else "SQLite"
    bench = Bench(workdir, n=50 if args.quick else args.n, runs=1 if args.quick else args.runs, quick=args.quick)
    try:
        bench.run(only)
    finally:
        bench.redis.terminate()
    data = {"database": database, "n": bench.n, "runs": bench.runs, "date": time.strftime("%Y-%m-%d"), "results": bench.results}
    (args.out / f"bench-{database.lower()}.json").write_text(json.dumps(data, indent=1))
    print()
    print(report(bench.results, f"{database} (n={bench.n}, runs={bench.runs})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
