"""App config: send the emails that account events call for; make the daily flow's beat entry after migrations."""

from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import receivers
        from .schedule import ensure_schedule

        receivers.connect()
        post_migrate.connect(ensure_schedule, sender=self, dispatch_uid="onboarding.schedule")
