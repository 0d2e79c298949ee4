"""Create an API key for a user and print it once."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import SCOPES
from accounts.services import api_key_create, user_get


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it; it is stored hashed and cannot be shown again."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--scopes", default=",".join(SCOPES), help=f"Comma-separated, from {', '.join(SCOPES)} (default: all).")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--rate-limit", default="", help="Requests allowed, e.g. 600/minute (default: JOBS['RATE_LIMIT']).")

    def handle(self, *args, username, scopes, name, rate_limit, **options):
        try:
            user = user_get(username)
        except Exception:
            raise CommandError(f"No user named {username!r}.") from None
        try:
            api_key, clear = api_key_create(user=user, scopes=[s.strip() for s in scopes.split(",") if s.strip()], name=name, rate_limit=rate_limit)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key for {username!r} (account {api_key.account}), scopes {', '.join(api_key.scopes)}:")
        self.stdout.write(clear)
