"""App config: register job functions and wire each Celery worker's life (jobs.worker) to its signals."""

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import (
            task_postrun,
            task_prerun,
            worker_init,
            worker_process_init,
            worker_process_shutdown,
            worker_ready,
            worker_shutdown,
            worker_shutting_down,
        )

        from . import checks, conf, worker  # noqa: F401  (checks registers itself)
        from . import kombu_fixes

        kombu_fixes.install()

        # Job functions live in each app's jobs.py (like Celery's tasks.py) or in JOBS["MODULES"];
        # the web process needs them too, to refuse unknown names.
        autodiscover_modules("jobs")
        for module in conf.get("MODULES"):
            import_module(module)
        # Identity first (before the pool forks), the sweeper once the worker is up; then the
        # pool processes' SIGTERM, the grace period, and the jobs still held when it stops.
        worker_init.connect(worker.on_worker_init, weak=False, dispatch_uid="jobs.worker.init")
        worker_ready.connect(worker.on_worker_ready, weak=False, dispatch_uid="jobs.worker.ready")
        worker_process_init.connect(worker.on_worker_process_init, weak=False, dispatch_uid="jobs.worker.process_init")
        worker_process_shutdown.connect(
            worker.on_worker_process_shutdown, weak=False, dispatch_uid="jobs.worker.process_shutdown"
        )
        worker_shutting_down.connect(worker.on_worker_shutting_down, weak=False, dispatch_uid="jobs.worker.shutting_down")
        worker_shutdown.connect(worker.on_worker_shutdown, weak=False, dispatch_uid="jobs.worker.shutdown")
        # Database connections live across jobs, closed by age or error (with CELERY_DB_REUSE_MAX set).
        task_prerun.connect(worker.on_task_boundary, weak=False, dispatch_uid="jobs.worker.task_prerun")
        task_postrun.connect(worker.on_task_boundary, weak=False, dispatch_uid="jobs.worker.task_postrun")
