"""The beat entry of the daily flow, made from settings.WORKER_SCHEDULE once and then kept in the admin."""

from django.conf import settings

TASK = "onboarding.start_daily_flow"
NAME = "onboarding: daily flow"


def ensure_schedule(**_signal_kwargs) -> None:
    """Create the periodic task if it is missing (post_migrate); an entry edited in the admin is left alone."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    minute, hour, day_of_month, month_of_year, day_of_week = settings.WORKER_SCHEDULE["onboarding"].split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=settings.WORKER_SCHEDULE_TIMEZONE,
    )
    PeriodicTask.objects.create(name=NAME, task=TASK, crontab=crontab, description="Trial and verification emails.")
