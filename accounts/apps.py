"""App config: give every new user a personal account."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from . import schema  # noqa: F401  (registers the OpenAPI description of API keys)
        from .services import ensure_personal_account

        post_save.connect(ensure_personal_account, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.personal")
