"""Run the onboarding flow for a day: add its job for the workers, as beat does, or run it here."""

from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from onboarding.flow import SENDERS, FlowReport, PlannedEmail, enqueue, flow_today, run_flow
from onboarding.tasks import daily_flow_add

# Backends that print, keep or drop emails: a run here would record as sent what never left.
UNDELIVERED = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


def send_now(planned: PlannedEmail) -> str:
    """Send the email from this process; if that fails, hand it to the workers as its job, which retries it."""
    try:
        sent = SENDERS[planned.purpose](*planned.args)
    except Exception as exc:
        handed = "its job is added for the workers, which retry it" if enqueue(planned) else "its job exists already"
        return f"not sent ({type(exc).__name__}: {exc}); {handed}"
    return "sent" if sent else "not sent (sent already, or no longer due)"


class Command(BaseCommand):
    help = (
        "Add the daily onboarding flow's job for a day (default: today in the schedule's time zone) for the "
        "workers, as beat does; --in-process runs it here instead, --dry-run prints what it would do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", dest="day", help="YYYY-MM-DD")
        parser.add_argument(
            "--in-process", action="store_true",
            help="Run the flow in this process and send its emails from here, with this process's email settings.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; change and send nothing.")

    def handle(self, *args, day: str | None, in_process: bool, dry_run: bool, **options):
        try:
            when = date.fromisoformat(day) if day else flow_today()
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, not {day!r}.") from None
        if dry_run:
            self.write_report(run_flow(when, dry_run=True), dry=True)
        elif in_process:
            self.run_here(when)
        else:
            job_id, added = daily_flow_add(day=when)
            if added:
                self.stdout.write(f"Added the onboarding flow job {job_id}: a worker runs it and sends the emails.")
            else:
                self.stdout.write(
                    f"The onboarding flow job {job_id} exists already; nothing added (--in-process runs the flow here)."
                )

    def run_here(self, when: date) -> None:
        if settings.EMAIL_BACKEND in UNDELIVERED:
            self.stderr.write(
                f"Warning: EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which does not deliver email: the emails "
                "below are recorded as sent and will never arrive. Set EMAIL_URL (in the environment or .env), "
                "or leave out --in-process to let a worker send them."
            )
        planned: list[PlannedEmail] = []

        def collect(email: PlannedEmail) -> bool:
            planned.append(email)
            return True

        # The emails go after the flow, never while one of its transactions is open.
        report = run_flow(when, deliver=collect)
        self.write_report(report, outcomes={email: send_now(email) for email in planned})

    def write_report(
        self, report: FlowReport, *, dry: bool = False, outcomes: dict[PlannedEmail, str] | None = None
    ) -> None:
        outcomes = outcomes or {}
        self.stdout.write(f"Onboarding flow for {report.day.isoformat()}{' (dry run)' if dry else ''}:")
        for email in report.planned:
            self.stdout.write(f"  {outcomes.get(email, 'would send')}: {email}")
        for account_id, plan in report.upgraded:
            self.stdout.write(f"  {'would upgrade' if dry else 'upgraded'}: account {account_id} to {plan}")
        for account_id in report.ended_without_plan:
            self.stdout.write(f"  trial {'would end' if dry else 'ended'} without a plan: account {account_id}")
        if not report.planned:
            self.stdout.write("  no emails to send")
