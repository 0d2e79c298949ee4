"""Job functions of this project. Replace `default_job` with your own work.

`default_job` runs for every job added without a name (Queue("jobs").add({...}) or
POST /api/job with no "name"). Add more job functions beside it, each under its own name:

    import jobs

    @jobs.job("send_report", public=True)   # public: API clients may add it too
    def send_report(job):
        job.progress("started")
        report = build_report(job.data["account_id"])   # the Django ORM works here
        job.progress(100)
        return {"rows": len(report)}                     # any JSON value: the job's returnvalue

and add them with Queue("jobs").add({"account_id": 7}, name="send_report") or
POST /api/job {"name": "send_report", "data": {"account_id": 7}}.
"""

import time

import jobs

STEPS = 5
STEP_SECONDS = 0.6


@jobs.job(public=True)
def default_job(job):
    """Stand-in work: a few seconds in steps, reporting progress. Replace it with your own."""
    job.progress("started")
    for step in range(1, STEPS + 1):
        time.sleep(float(job.data.get("step_seconds", STEP_SECONDS)))
        job.progress(round(step * 100 / STEPS))
    return {"ok": True, "steps": STEPS, "data": job.data}
