"""`python -m worker`: start a Celery worker for the job queue with the project's defaults.

Extra arguments go to `celery worker`, e.g. `python -m worker --concurrency 8`.
"""

import os
import sys


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gravity.settings")
    import django

    django.setup()
    from gravity.celery import app
    from jobs import conf

    defaults = ["worker", "--loglevel", os.environ.get("LOG_LEVEL", "INFO"), "--queues", conf.get("QUEUE")]
    app.worker_main(defaults + argv)


if __name__ == "__main__":
    main(sys.argv[1:])
