"""Routes of the account API; include under "api/"."""

from django.urls import re_path

from .views import AccountView, PlanView, TokenView, VerifyView

urlpatterns = [
    re_path(r"^account/?$", AccountView.as_view(), name="account"),
    re_path(r"^account/plan/?$", PlanView.as_view(), name="account-plan"),
    re_path(r"^user/verify/?$", VerifyView.as_view(), name="user-verify"),
    re_path(r"^auth/token/?$", TokenView.as_view(), name="auth-token"),
]
