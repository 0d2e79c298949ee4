"""Run a command against a throwaway PostgreSQL server: `python -m devtools.postgres run -- CMD ...`."""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devtools.redis import free_port


def bindir() -> Path:
    """Return the directory of initdb/pg_ctl: pg_config's, else the newest under /usr/lib/postgresql."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (found / "initdb").exists():
            return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    raise RuntimeError("No PostgreSQL server found: install your distribution's postgresql package.")


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; root (CI, containers) runs it as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def run(command: list[str]) -> int:
    base = Path(tempfile.mkdtemp(prefix="gravity-pg-"))
    data, socket_dir = base / "data", base / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (base, socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    bins = bindir()
    try:
        subprocess.run(
            _as_server_user([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True, capture_output=True,
        )
        subprocess.run(
            _as_server_user([
                str(bins / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "start", "-o",
                f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            ]),
            check=True, capture_output=True,
        )
        url = f"postgres://postgres@127.0.0.1:{port}/gravity"
        _create_database(url)
        print(f"[dev] PostgreSQL for this run: {url}", file=sys.stderr, flush=True)
        return subprocess.run(command, env={**os.environ, "DATABASE_URL": url}).returncode
    finally:
        subprocess.run(_as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _create_database(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE gravity")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def throwaway_database(url: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """Create a new database on the server `url` names; return its URL and a function that drops it.

    Created and dropped from the maintenance database: the one `url` names may not exist.
    """
    import psycopg

    parts = urlsplit(url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.postgres")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run CMD with DATABASE_URL set to a throwaway server")
    run_cmd.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command")
    return run(cmd)


if __name__ == "__main__":
    sys.exit(main())
