"""The daily flow as a job: progress as it goes, a report as its result."""

from datetime import date

import jobs

from .days import flow_today
from .flow import run_flow


@jobs.job("onboarding.daily_flow")
def daily_flow(job):
    day = date.fromisoformat(job.data["date"]) if job.data.get("date") else flow_today()
    report = run_flow(day, progress=job.progress)
    return {
        "date": day.isoformat(),
        "emails": [str(planned) for planned in report.planned],
        "upgraded": [{"account": account_id, "plan": plan} for account_id, plan in report.upgraded],
        "endedWithoutPlan": report.ended_without_plan,
    }
