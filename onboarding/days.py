"""The schedule's days: today and a day's bounds in settings.WORKER_SCHEDULE_TIMEZONE (Europe/London)."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone


def flow_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.WORKER_SCHEDULE_TIMEZONE)


def flow_today(now: datetime | None = None) -> date:
    """Today in the schedule's time zone (Europe/London by default)."""
    return timezone.localtime(now or timezone.now(), flow_zone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The start and end of `day` in the schedule's time zone: 23 or 25 hours long on a clock change."""
    zone = flow_zone()
    return datetime.combine(day, time.min, zone), datetime.combine(day + timedelta(days=1), time.min, zone)
