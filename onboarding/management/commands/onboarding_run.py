"""Run the onboarding flow by hand for a day, sending now (or only printing with --dry-run)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from onboarding.flow import SENDERS, PlannedEmail, flow_today, run_flow


def send_now(planned: PlannedEmail) -> bool:
    """Send in this process instead of adding a job (the same send-once rule applies)."""
    return SENDERS[planned.purpose](*planned.args)


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
        # Emails are sent after the flow: never while one of its transactions is open.
        outbox: list[PlannedEmail] = []
        report = run_flow(when, dry_run=dry_run, deliver=lambda planned: outbox.append(planned) is None)
        for planned in outbox:
            send_now(planned)
        self.stdout.write(f"Onboarding flow for {when.isoformat()}{' (dry run)' if dry_run else ''}:")
        for planned in report.planned:
            self.stdout.write(f"  {'would send' if dry_run else 'sent'}: {planned}")
        for account_id, plan in report.upgraded:
            self.stdout.write(f"  {'would upgrade' if dry_run else 'upgraded'}: account {account_id} to {plan}")
        for account_id in report.ended_without_plan:
            self.stdout.write(f"  trial ended without a plan: account {account_id}")
        if not report.planned:
            self.stdout.write("  no emails to send")
