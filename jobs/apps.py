"""App config: register job functions and hook the sweeper into Celery workers."""

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

        from . import checks, conf, runner, sweeper  # noqa: F401  (checks registers itself)

        # Job functions live in each app's jobs.py (like Celery's tasks.py) or in JOBS["MODULES"];
        # the web process needs them too, to refuse unknown names.
        autodiscover_modules("jobs")
        for module in conf.get("MODULES"):
            import_module(module)
        worker_init.connect(runner.mark_worker_node, weak=False, dispatch_uid="jobs.runner.node")
        worker_ready.connect(sweeper.start_in_worker, weak=False, dispatch_uid="jobs.sweeper.start")
        worker_shutting_down.connect(sweeper.on_shutting_down, weak=False, dispatch_uid="jobs.sweeper.grace")
        worker_shutdown.connect(sweeper.stop_in_worker, weak=False, dispatch_uid="jobs.sweeper.stop")
