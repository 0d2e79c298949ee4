"""`python -m worker`: start a Celery worker for the job queues with the project's defaults.

It consumes JOBS["QUEUE"] and every queue a registered job function names, unless told which
(`-Q`/`--queues`). Extra arguments go to `celery worker`, e.g. `python -m worker --concurrency 8`.
"""

import os
import sys


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gravity.settings")
    import django

    django.setup()
    from gravity.celery import app
    from jobs import conf, registry

    defaults = ["worker", "--loglevel", os.environ.get("LOG_LEVEL", "INFO")]
    if not names_queues(argv):
        defaults += ["--queues", ",".join(dict.fromkeys([conf.get("QUEUE"), *registry.queues()]))]
    app.worker_main(defaults + argv)


def names_queues(argv: list[str]) -> bool:
    """Whether the arguments choose the queues themselves (-Q jobs, -Qjobs, --queues jobs, --queues=jobs)."""
    return any(arg.startswith("-Q") or arg == "--queues" or arg.startswith("--queues=") for arg in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
