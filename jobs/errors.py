"""The exceptions of the jobs app: all under JobError, which is never raised itself."""


class JobError(Exception):
    """Base class of every error the jobs app raises."""


class InvalidJob(JobError, ValueError):
    """The name, data or options of a job are not acceptable."""

    def __init__(self, message: str, *, field: str | None = None, known_names: list[str] | None = None):
        super().__init__(message)
        self.field = field
        self.known_names = known_names


class UnknownJobName(InvalidJob):
    """No job function is registered under the name."""


class JobExists(JobError):
    """A job with the requested id already exists."""

    def __init__(self, job_id: str):
        super().__init__(f"A job with id {job_id!r} already exists.")
        self.job_id = job_id


class JobNotFound(JobError, LookupError):
    """There is no job with the id."""

    def __init__(self, job_id: str):
        super().__init__(f"No job with id {job_id!r}.")
        self.job_id = job_id


class JobInWrongState(JobError):
    """The job is not in the state the change needs; its `code` names the rule for API clients."""

    code = "job_in_wrong_state"

    def __init__(self, job_id: str, state: str, message: str):
        super().__init__(message)
        self.job_id = job_id
        self.state = state


class JobStarted(JobInWrongState):
    """The job has left waiting/delayed, so it can no longer be removed."""

    code = "job_started"

    def __init__(self, job_id: str, state: str):
        super().__init__(job_id, state, f"Job {job_id!r} is {state}: only a waiting or delayed job can be removed.")


class JobNotFailed(JobInWrongState):
    """Only a failed job can be retried."""

    code = "job_not_failed"

    def __init__(self, job_id: str, state: str):
        super().__init__(job_id, state, f"Job {job_id!r} is {state}: only a failed job can be retried.")


class JobNotDelayed(JobInWrongState):
    """Only a delayed job can be promoted."""

    code = "job_not_delayed"

    def __init__(self, job_id: str, state: str):
        super().__init__(job_id, state, f"Job {job_id!r} is {state}: only a delayed job can be promoted.")


class JobIsInternal(JobError):
    """The job runs an internal job function: an API client may read it, not change it."""

    def __init__(self, job_id: str, name: str):
        super().__init__(
            f"Job {job_id!r} runs the internal job function {name!r}: it can be read through the API but not changed."
        )
        self.job_id = job_id
        self.name = name


class AlreadyRegistered(JobError):
    """A job function is already registered under the name."""


class JobFailed(JobError):
    """Stands for a job's failure that left no exception to re-create (killed at its time limit, lost with its worker)."""
