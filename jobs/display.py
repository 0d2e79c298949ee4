"""How jobs read to people: short ages and run times, progress as text; shared by the CLI and the admin."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from . import conf
from .models import Job


def duration(seconds: float | None) -> str:
    """A short human duration: 0.4s, 12s, 4m, 3h, 2d ("-" for None)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def age(moment: datetime | None) -> str:
    """A short human duration since `moment`: 12s, 4m, 3h, 2d."""
    return duration((timezone.now() - moment).total_seconds()) if moment else "-"


def run_seconds(job: Job) -> float | None:
    """How long the latest attempt ran (so far, if it still runs); None if it never started."""
    if job.processed_on is None:
        return None
    return ((job.finished_on or timezone.now()) - job.processed_on).total_seconds()


def run_time(job: Job) -> str:
    return duration(run_seconds(job))


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """Progress as people read it: a number as a percentage, anything else as compact JSON."""
    if is_number(value):
        return f"{value:g}%"
    return json.dumps(value, separators=(",", ":"))


SYSTEM = "system"


def owner_names(owners: Iterable[str]) -> dict[str, str]:
    """Name each owner key for people, with one call of JOBS["OWNER_NAMES"]: "system" for "", else its name or key."""
    keys = set(owners)
    path = conf.get("OWNER_NAMES")
    named = import_string(path)(keys - {""}) if path and keys - {""} else {}
    return {key: SYSTEM if key == "" else named.get(key) or key for key in keys}
