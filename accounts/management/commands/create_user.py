"""Create a user (with a personal account) from the command line."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a user and a personal account for it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="Without it the user cannot log in with a password (API keys still work).")
        parser.add_argument("--staff", action="store_true", help="Let the user into the admin.")

    def handle(self, *args, username, email, password, staff, **options):
        User = get_user_model()
        if User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            raise CommandError(f"A user named {username!r} already exists.")
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=staff)
        self.stdout.write(f"Created user {user.get_username()!r}.")
