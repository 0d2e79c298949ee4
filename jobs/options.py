"""Job options (Bull's opts): parsed once, from Python or JSON, into a small value object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import conf
from .errors import InvalidJob

# Bull's largest priority (2^21); 1 is the highest.
MAX_PRIORITY = 2_097_152
# Custom ids must be usable in /api/job/<id> as they are.
JOB_ID_CHARS = r"[A-Za-z0-9_.:@~-]{1,200}"
JOB_ID_PATTERN = re.compile(JOB_ID_CHARS)
KNOWN_OPTIONS = ("delay", "attempts", "backoff", "priority", "jobId", "timeout", "removeOnComplete", "removeOnFail")
# The largest retention a job may ask for: ten years, a million of the newest jobs.
MAX_AGE = 10 * 365 * 24 * 3600
MAX_KEEP = 1_000_000
# Ids that name an endpoint of their own under /api/job/.
RESERVED_JOB_IDS = ("counts",)
BACKOFF_TYPES = ("fixed", "exponential")


@dataclass(frozen=True)
class Backoff:
    type: str
    delay: int

    def delay_after(self, attempts_made: int) -> int:
        """Return the wait in ms before the next attempt, after `attempts_made` failures (Bull's formula)."""
        if self.type == "exponential":
            return round((2**attempts_made - 1) * self.delay)
        return self.delay

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "delay": self.delay}


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long a finished job is kept (Bull's removeOnComplete / removeOnFail): an age, a count of the newest, or both.

    `age` 0 removes the job as soon as it finishes; neither kept for ever.
    """

    age: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, raw: Any, name: str) -> Retention:
        """true (remove at once), false (keep), a count to keep, or {"age": seconds, "count": n}."""
        if raw is True:
            return cls(age=0)
        if raw is False:
            return cls()
        if isinstance(raw, int) and not isinstance(raw, bool):
            return cls(count=_integer(raw, name, 0, MAX_KEEP))
        if isinstance(raw, dict) and raw and not set(raw) - {"age", "count"}:
            age, count = raw.get("age"), raw.get("count")
            return cls(
                age=None if age is None else _integer(age, f"{name}.age", 0, MAX_AGE),
                count=None if count is None else _integer(count, f"{name}.count", 0, MAX_KEEP),
            )
        raise InvalidJob(
            f'opts.{name} must be true, false, a number of jobs to keep, or {{"age": seconds, "count": jobs}}.',
            field=f"opts.{name}",
        )

    def to_json(self) -> bool | int | dict[str, int]:
        if self.age == 0 and self.count is None:
            return True
        if self.age is None and self.count is None:
            return False
        if self.age is None:
            return self.count
        return {"age": self.age} if self.count is None else {"age": self.age, "count": self.count}


@dataclass(frozen=True)
class JobOptions:
    delay: int = 0
    attempts: int = 1
    backoff: Backoff | None = None
    priority: int | None = None
    job_id: str | None = None
    timeout: int | None = None
    # None: the installation's default (JOBS["REMOVE_ON_COMPLETE"], JOBS["REMOVE_ON_FAIL"]).
    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the options as Bull's opts object, leaving out what was not set."""
        opts: dict[str, Any] = {"attempts": self.attempts, "delay": self.delay}
        if self.backoff is not None:
            opts["backoff"] = self.backoff.to_json()
        if self.priority is not None:
            opts["priority"] = self.priority
        if self.job_id is not None:
            opts["jobId"] = self.job_id
        if self.timeout is not None:
            opts["timeout"] = self.timeout
        if self.remove_on_complete is not None:
            opts["removeOnComplete"] = self.remove_on_complete.to_json()
        if self.remove_on_fail is not None:
            opts["removeOnFail"] = self.remove_on_fail.to_json()
        return opts


def parse_options(raw: Any) -> JobOptions:
    """Validate Bull-style opts (`delay`, `attempts`, `backoff`, `priority`, `jobId`, `timeout`, `removeOnComplete`, `removeOnFail`)."""
    if raw is None:
        return JobOptions()
    if not isinstance(raw, dict):
        raise InvalidJob("opts must be a JSON object.", field="opts")
    unknown = sorted(set(raw) - set(KNOWN_OPTIONS))
    if unknown:
        raise InvalidJob(
            f"Unknown option {', '.join(map(repr, unknown))}; known options are {', '.join(KNOWN_OPTIONS)}.",
            field="opts",
        )
    job_id = raw.get("jobId")
    if job_id is not None and not (isinstance(job_id, str) and JOB_ID_PATTERN.fullmatch(job_id)):
        raise InvalidJob(
            "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -.",
            field="opts.jobId",
        )
    if job_id in RESERVED_JOB_IDS:
        raise InvalidJob(f"opts.jobId {job_id!r} is reserved: /api/job/{job_id} is an endpoint of its own.", field="opts.jobId")
    priority = raw.get("priority")
    if priority is not None:
        priority = _integer(priority, "priority", 1, MAX_PRIORITY)
    timeout = raw.get("timeout")
    if timeout is not None:
        timeout = _integer(timeout, "timeout", 1, conf.get("MAX_DELAY"))
    return JobOptions(
        delay=_integer(raw.get("delay", 0), "delay", 0, conf.get("MAX_DELAY")),
        attempts=_integer(raw.get("attempts", 1), "attempts", 1, conf.get("MAX_ATTEMPTS")),
        backoff=_backoff(raw.get("backoff")),
        priority=priority,
        job_id=job_id,
        timeout=timeout,
        remove_on_complete=None if raw.get("removeOnComplete") is None else Retention.parse(raw["removeOnComplete"], "removeOnComplete"),
        remove_on_fail=None if raw.get("removeOnFail") is None else Retention.parse(raw["removeOnFail"], "removeOnFail"),
    )


def _backoff(raw: Any) -> Backoff | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"type", "delay"})
        if extra or raw.get("type") not in BACKOFF_TYPES:
            raise InvalidJob(
                'opts.backoff must be a number of ms or {"type": "fixed" or "exponential", "delay": ms}.',
                field="opts.backoff",
            )
        return Backoff(raw["type"], _integer(raw.get("delay", 0), "backoff.delay", 0, conf.get("MAX_DELAY")))
    return Backoff("fixed", _integer(raw, "backoff", 0, conf.get("MAX_DELAY")))


def _integer(value: Any, name: str, low: int, high: int) -> int:
    # bool is an int in Python but never a sensible count or duration.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidJob(f"opts.{name} must be a whole number from {low} to {high}.", field=f"opts.{name}")
    return value
