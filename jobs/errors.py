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


class JobStarted(JobError):
    """The job has left waiting/delayed, so it can no longer be removed."""

    def __init__(self, job_id: str, state: str):
        super().__init__(
            f"Job {job_id!r} is {state}: only a waiting or delayed job can be removed."
        )
        self.job_id = job_id
        self.state = state


class AlreadyRegistered(JobError):
    """A job function is already registered under the name."""


class JobFailed(JobError):
    """Stands for a job's failure that left no exception to re-create (killed at its time limit, lost with its worker)."""
