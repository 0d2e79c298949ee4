"""Create the development demo user and print a fresh API key for it (DEBUG only)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import SCOPES, ApiKey
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create the demo user (password 'demo', admin access) and print a new API key for it."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("bootstrap_demo makes a user with a known password: it runs only with DEBUG on.")
        User = get_user_model()
        user, created = User.objects.get_or_create(username="demo", defaults={"is_staff": True, "is_superuser": True})
        if created:
            user.set_password("demo")
            user.save(update_fields=["password"])
        # One live demo key at a time: the one printed now.
        ApiKey.objects.filter(user=user, name="demo", revoked_at__isnull=True).update(revoked_at=timezone.now())
        _, clear = api_key_create(user=user, scopes=SCOPES, name="demo")
        self.stdout.write(self.style.SUCCESS("Demo user 'demo' (password 'demo'). API key for this run:"))
        self.stdout.write(f"  export API_KEY={clear}")
