"""App config of the worker package (its jobs.py is found by the jobs app)."""

from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "worker"
