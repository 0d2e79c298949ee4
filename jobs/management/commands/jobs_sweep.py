"""Run one sweep of the job table by hand (workers already sweep on their own)."""

from django.core.management.base import BaseCommand

from jobs.services import jobs_sweep


class Command(BaseCommand):
    help = "Promote due delayed jobs and send the messages of waiting jobs that never reached the broker."

    def handle(self, *args, **options):
        report = jobs_sweep()
        self.stdout.write(f"{report.promoted} delayed jobs promoted, {report.sent} messages sent.")
