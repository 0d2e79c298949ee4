"""Faults the tests inject into real processes, and an audit-style delete receiver; loaded by every process of the suite.

tests/settings.py lists this module in JOBS["MODULES"], so the web processes, the workers and the
test process all load it. With GRAVITY_TEST_FAULTS naming a directory, a file
`<directory>/claim-<job id>` (or `complete-<job id>`) makes the next claim (or completion) of that
job fail once with a database error, in whichever process makes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.db import OperationalError
from django.db.backends.signals import connection_created
from django.db.models.signals import pre_delete

logger = logging.getLogger(__name__)

# The column only that write of a job sets: the claim sets processed_on, completion return_value.
WRITES = {"claim": '"processed_on"', "complete": '"return_value"'}


def inject(execute, sql, params, many, context):
    directory = os.environ.get("GRAVITY_TEST_FAULTS")
    if directory and sql.startswith('UPDATE "jobs_job"'):
        columns = sql.split("WHERE")[0]
        for write, column in WRITES.items():
            if column not in columns:
                continue
            for value in params or ():
                if not isinstance(value, str) or "/" in value:
                    continue
                try:
                    # Only one process can remove the file: the fault happens once.
                    (Path(directory) / f"{write}-{value}").unlink()
                except OSError:
                    continue
                logger.warning("Injected fault: %s of job %s fails", write, value)
                raise OperationalError(f"injected fault: {write} of job {value}")
    return execute(sql, params, many, context)


def add_fault_injection(sender, connection, **kwargs) -> None:
    if inject not in connection.execute_wrappers:
        connection.execute_wrappers.append(inject)


def audit(sender, instance, **kwargs) -> None:
    """What an audit app does: look at every row about to be deleted, whatever its model."""
    logger.debug("Deleting %s %s", sender.__name__, instance.pk)


connection_created.connect(add_fault_injection, weak=False, dispatch_uid="tests.faults.inject")
# Connected without a sender, as audit apps do: Django then deletes every model by a SELECT and a
# DELETE by id, which is why a job's guarded DELETE cannot rely on QuerySet.delete().
pre_delete.connect(audit, weak=False, dispatch_uid="tests.faults.audit")
