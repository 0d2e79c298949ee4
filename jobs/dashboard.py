"""The job dashboard's numbers: jobs per state and queue, finished per minute, slow and failing names, oldest wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from . import selectors
from .models import Job, JobState

# The windows the dashboard offers, in hours. Bounded, so its reads of finished jobs follow the
# (state, finished_on) index over at most a day, whatever the size of the table.
WINDOWS = (1, 3, 6, 12, 24)
DEFAULT_HOURS = 3
# How many job names the slowest and most-failing lists show.
TOP_NAMES = 10


def window_hours(value: str | None) -> int:
    """The window asked for (`?hours=`), if it is one of WINDOWS; else the default."""
    try:
        hours = int(value or "")
    except ValueError:
        return DEFAULT_HOURS
    return hours if hours in WINDOWS else DEFAULT_HOURS


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    hours: int
    # Jobs per state, in all and per queue.
    states: dict[str, int]
    queues: dict[str, dict[str, int]]
    # One entry per minute of the window, oldest first: the minute (ms since the epoch), its
    # label in the site's time zone, and the jobs completed and failed in it.
    minutes: list[int]
    labels: list[str]
    completed: list[int]
    failed: list[int]
    # Per job name, of the jobs that finished in the window.
    slowest: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    oldest: Job | None
    oldest_waited: float | None

    def charts(self) -> dict[str, Any]:
        """What the page's script draws (json_script): everything but the oldest job's row."""
        return {
            "states": self.states,
            "queues": self.queues,
            "throughput": {
                "minutes": self.minutes, "labels": self.labels, "completed": self.completed, "failed": self.failed,
            },
            "slowest": self.slowest,
            "failing": self.failing,
        }


def dashboard(*, hours: int, now: datetime | None = None) -> Dashboard:
    """Read the numbers in four queries: counts per queue and state (kept as jobs change, as job_counts),
    jobs finished in the window per minute and per name (bounded by the window), and the oldest waiting job.
    """
    now = now or timezone.now()
    # Whole minutes, the current one included, so every bar is one minute long.
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=hours)

    queues = selectors.job_counts(owner=None, by="queue")
    states = {state: sum(counts[state] for counts in queues.values()) for state in JobState.values}

    per_minute = {(_ms(row["minute"]), row["state"]): row["n"] for row in selectors.finished_per_minute(since=start)}
    minutes = [start + timedelta(minutes=index) for index in range(hours * 60)]
    stamps = [_ms(minute) for minute in minutes]

    names: dict[str, dict[str, Any]] = {}
    for row in selectors.finished_by_name(since=start):
        entry = names.setdefault(row["name"], {"name": row["name"], "completed": 0, "failed": 0, "runs": 0,
                                               "total": 0.0, "longest": 0.0})
        entry[row["state"]] += row["n"]
        entry["runs"] += row["timed"]
        if row["timed"]:
            entry["total"] += row["total"].total_seconds()
            entry["longest"] = max(entry["longest"], row["longest"].total_seconds())
    slowest = sorted((entry for entry in names.values() if entry["runs"]), key=lambda e: -e["total"] / e["runs"])
    failing = sorted((entry for entry in names.values() if entry["failed"]), key=lambda e: (-e["failed"], e["name"]))

    oldest = selectors.oldest_waiting()
    return Dashboard(
        hours=hours,
        states=states,
        queues=queues,
        minutes=stamps,
        labels=[timezone.localtime(minute).strftime("%H:%M") for minute in minutes],
        completed=[per_minute.get((stamp, JobState.COMPLETED), 0) for stamp in stamps],
        failed=[per_minute.get((stamp, JobState.FAILED), 0) for stamp in stamps],
        slowest=[
            {"name": entry["name"], "runs": entry["runs"], "average": round(entry["total"] / entry["runs"], 3),
             "longest": round(entry["longest"], 3)}
            for entry in slowest[:TOP_NAMES]
        ],
        failing=[
            {"name": entry["name"], "failed": entry["failed"], "completed": entry["completed"],
             "share": round(entry["failed"] / (entry["failed"] + entry["completed"]), 3)}
            for entry in failing[:TOP_NAMES]
        ],
        oldest=oldest,
        oldest_waited=max(0.0, (now - oldest.run_at).total_seconds()) if oldest else None,
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
