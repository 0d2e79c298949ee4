"""Run the onboarding flow by hand for a day, sending now (or only printing with --dry-run)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from onboarding.flow import SENDERS, PlannedEmail, flow_today, run_flow


def send_now(planned: PlannedEmail) -> None:
    """Send in this process instead of adding a job (the same send-once rule applies)."""
    args = [planned.user_id] if planned.account_id is None else [planned.user_id, planned.account_id]
    SENDERS[planned.purpose](*args)


class Command(BaseCommand):
    help = "Run the daily onboarding flow for a day (default: today in the schedule's time zone)."

    def add_arguments(self, parser):
        parser.add_argument("--date", dest="day", help="YYYY-MM-DD")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be sent; change and send nothing.")

    def handle(self, *args, day: str | None, dry_run: bool, **options):
        try:
            when = date.fromisoformat(day) if day else flow_today()
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, not {day!r}.") from None
        report = run_flow(when, dry_run=dry_run, deliver=send_now)
        self.stdout.write(f"Onboarding flow for {when.isoformat()}{' (dry run)' if dry_run else ''}:")
        for planned in report.planned:
            self.stdout.write(f"  {'would send' if dry_run else 'sent'}: {planned}")
        for account_id, plan in report.upgraded:
            self.stdout.write(f"  {'would upgrade' if dry_run else 'upgraded'}: account {account_id} to {plan}")
        for account_id in report.ended_without_plan:
            self.stdout.write(f"  trial ended without a plan: account {account_id}")
        if not report.planned:
            self.stdout.write("  no emails to send")
