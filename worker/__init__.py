"""The worker: the default job function, and `python -m worker` to start a Celery worker."""
