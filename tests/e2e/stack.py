"""A real stack for end-to-end tests: redis-server, gunicorn and celery worker processes."""

from __future__ import annotations

import json
import os
import signal
from email import message_from_string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import requests
import requests.adapters

from devtools import postgres as dev_postgres
from devtools import redis as dev_redis

ROOT = Path(__file__).resolve().parents[2]
ALL_SCOPES = "job.create,job.read,job.update,job.delete,account.read,account.update"
# What a scraper of the stack's /metrics sends (Authorization: Bearer …).
METRICS_TOKEN = "e2e-metrics-token-0123456789"


class Stack:
    """Start, drive and stop the processes of one gravity-jobs installation."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen] = {}
        # Processes that must be signalled as a whole process group (see start_worker's namespace).
        self.grouped: set[str] = set()
        self.keys: dict[str, str] = {}
        # A file here makes one claim or completion fail with a database error (tests/faults.py).
        self.faults = workdir / "faults"
        self.faults.mkdir()
        self.redis_port = dev_redis.free_port()
        self.web_port = dev_redis.free_port()
        self.database_url, self._drop_database = throwaway_database(workdir)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_JOB_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "REDIS_VISIBILITY_TIMEOUT": "10",
            # As behind one load balancer: a test that needs its own client address for the
            # anonymous endpoints' limits sends it in X-Forwarded-For (see `request`).
            "TRUSTED_PROXIES": "1",
            "GRAVITY_TEST_FAULTS": str(self.faults),
            # The worker is another process: emails go to files the tests read.
            "EMAIL_URL": f"file://{workdir / 'mail'}",
            # Links in emails lead to this stack's web server.
            "SITE_URL": f"http://127.0.0.1:{self.web_port}",
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.http = requests.Session()
        # No keep-alive: gunicorn closes idle connections after 2 s, and a request sent on one
        # just as it closes fails with RemoteDisconnected, which says nothing about the app.
        self.http.headers["Connection"] = "close"
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32))

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> Stack:
        self.start_redis()
        self.manage("migrate", "--noinput")
        for username in ("alice", "bob"):
            self.manage("create_user", username)
            self.keys[username] = self.manage("create_api_key", username, "--scopes", ALL_SCOPES).strip()
        self.keys["alice-read-only"] = self.manage("create_api_key", "alice", "--scopes", "job.read").strip()
        self.start_web()
        self.start_worker("worker")
        return self

    def start_redis(self) -> None:
        self.processes["redis"] = dev_redis.start(self.redis_port, self.workdir / "redis")

    def stop_redis(self) -> None:
        self.stop("redis")

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run manage.py with the stack's settings (`env` adds to them); return what it printed."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True,
            text=True, timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.Popen:
        """Start a process of the stack; `env` adds to (or overrides) the stack's environment for it alone."""
        log = open(self.workdir / f"{name}.log", "ab")
        # A session of its own, so a test can signal a worker with all its pool processes at once.
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=preexec_fn,
        )
        self.processes[name] = process
        return process

    def start_web(self) -> None:
        self.spawn(
            "web",
            # As the Procfile runs it (gunicorn.conf.py: uvicorn workers), with 8 threads for the sync views.
            [sys.executable, "-m", "gunicorn", "gravity.asgi:application", "--bind", f"127.0.0.1:{self.web_port}",
             "--workers", "2", "--timeout", "60"],
            {"WEB_THREADS": "8"},
        )
        wait_until(lambda: self._answers(), 30, "the web server to answer", self)

    def start_worker(
        self, name: str, concurrency: int = 2, *extra: str, hostname: str | None = None, container: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start `python -m worker` (`env` adds to its environment); with container=True in a PID namespace of its own, as PID 1 (as in a container)."""
        log = self.workdir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        command = [sys.executable, "-m", "worker", "--concurrency", str(concurrency), "--hostname",
                   hostname or f"{name}@%h", "--without-mingle", "--without-gossip", *extra]
        preexec_fn = None
        if container:
            # unshare stays as the namespace's parent: it ignores SIGTERM (so a signal to the group
            # reaches the worker alone, as in a container) and SIGKILLs the worker if it dies.
            user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
            command = ["unshare", *user, "--pid", "--fork", "--kill-child", *command]
            preexec_fn = partial(signal.signal, signal.SIGTERM, signal.SIG_IGN)
            self.grouped.add(name)
        process = self.spawn(name, command, env, preexec_fn)
        wait_until(lambda: b" ready." in log.read_bytes()[offset:], 60, f"{name} to be ready", self)
        return process

    @contextmanager
    def held_solo_worker(self) -> Iterator[Path]:
        """Run a one-process worker alone on the "solo" queue, held by a job that waits for the gate it yields.

        What is added to the queue meanwhile waits; once the gate exists the worker takes it in queue
        order. The stack's worker stops meanwhile: it consumes every queue a job function names.
        """
        self.stop("worker")
        self.start_worker("solo", 1, "--queues", "solo")
        try:
            gate = self.gate()
            blocker = self.add("solo_gate", {"gate": str(gate)})
            self.wait_for(blocker["id"], "active")
            yield gate
        finally:
            self.stop("solo")
            self.start_worker("worker")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30, group: bool = False) -> None:
        """Signal a process (with group=True: every process of its group at once, as Heroku and docker stop do) and wait."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        group = group or name in self.grouped
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started, as the OOM killer or a lost machine would."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for name in [n for n in self.processes if n != "redis"] + ["redis"]:
            self.stop(name)
        self.http.close()
        self._drop_database()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def python(self, code: str) -> str:
        """Run Python in a Django process of the stack (its database and broker); return what it printed."""
        return self.manage("shell", "--verbosity", "0", "-c", code)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_JOB_URL"])

    def messages_in(self, queue: str) -> int:
        """Messages in Redis for `queue`: in its priority lists, and taken by workers but not acknowledged."""
        client = self.redis()
        try:
            keys = [queue, *(f"{queue}\x06\x16{step}" for step in range(1, 10))]
            listed = sum(client.llen(key) for key in keys)
            held = sum(json.loads(raw)[2] == queue for raw in client.hvals("unacked"))
            return listed + held
        finally:
            client.close()

    def logs(self, lines: int = 40) -> str:
        parts = []
        for log in sorted(self.workdir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _answers(self) -> bool:
        try:
            return self.http.get(f"{self.base_url}/api/job/ping", timeout=2).status_code in (401, 404)
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or a worker still loading the app.
            return False

    # -- the API -----------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, key: str | None = "alice", client: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send a request with `key`'s API key (None: anonymous), from the address `client` if given."""
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        if client is not None:
            headers["X-Forwarded-For"] = client
        return self.http.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def add(self, name: str | None = None, data: dict | None = None, opts: dict | None = None, key: str = "alice") -> dict:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if data is not None:
            body["data"] = data
        if opts is not None:
            body["opts"] = opts
        response = self.request("POST", "/api/job", key=key, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def add_from_code(self, name: str, data: dict, count: int = 1, key: str = "alice") -> list[str]:
        """Add `count` jobs of an internal job function from Python, for `key`'s account; return their ids.

        API clients cannot name internal functions; code acting for an account can, and the
        account then reads the jobs through the API.
        """
        account = self.request("GET", "/api/account", key=key).json()["account"]["id"]
        code = (
            "import json, jobs\n"
            f"print(json.dumps([jobs.Queue().add({data!r}, name={name!r}, owner='account:{account}').id for _ in range({count})]))"
        )
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def get(self, job_id: str, key: str = "alice") -> dict:
        response = self.request("GET", f"/api/job/{job_id}", key=key)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, job_id: str, until: Callable[[dict], bool] | str = "finished", timeout: float = 30) -> dict:
        """Poll the job until `until` holds ('finished' = finishedOn is set; or a state name)."""
        if until == "finished":
            check = lambda job: job["finishedOn"] is not None  # noqa: E731
        elif isinstance(until, str):
            check = lambda job, state=until: job["state"] == state  # noqa: E731
        else:
            check = until
        seen: list[dict] = []

        def poll() -> bool:
            seen.append(self.get(job_id))
            return check(seen[-1])

        try:
            wait_until(poll, timeout, f"job {job_id}", self)
        except AssertionError as timed_out:
            # Say what the job looked like when the wait gave up, not before it began.
            raise AssertionError(f"{timed_out.args[0].splitlines()[0]}, last read as {seen[-1] if seen else 'never read'}\n"
                                 + "\n".join(timed_out.args[0].splitlines()[1:])) from None
        return seen[-1]

    def mailbox(self) -> list[tuple[str, str, str]]:
        """Every message the workers have sent, as (to, subject, text body), from the file backend's files."""
        messages = []
        for path in sorted((self.workdir / "mail").glob("*.log")):
            for raw in path.read_text().split("-" * 79):
                if raw.strip():
                    parsed = message_from_string(raw.strip())
                    text = next(part for part in parsed.walk() if part.get_content_type() == "text/plain")
                    messages.append((parsed["To"], parsed["Subject"], text.get_payload(decode=True).decode()))
        return messages

    def gate(self) -> Path:
        """Return a path that does not exist yet: a job waiting for it holds a worker until it is created."""
        return self.workdir / f"gate-{uuid.uuid4().hex}"


def wait_until(check: Callable[[], bool], timeout: float, what: str, stack: Stack | None = None, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{stack.logs() if stack else ''}")
        time.sleep(interval)


def throwaway_database(workdir: Path) -> tuple[str, Callable[[], None]]:
    """A fresh database for the stack: a SQLite file, or a new PostgreSQL database when DATABASE_URL names one."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{workdir / 'e2e.sqlite3'}", lambda: None
    return dev_postgres.throwaway_database(url, "gravity_e2e")
