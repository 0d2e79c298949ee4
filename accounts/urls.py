"""Routes of the account API; include under "api/"."""

from django.urls import re_path

from .views import PlanView, SignupView, VerifyView

urlpatterns = [
    re_path(r"^account/?$", SignupView.as_view(), name="account-signup"),
    re_path(r"^account/plan/?$", PlanView.as_view(), name="account-plan"),
    re_path(r"^user/verify/?$", VerifyView.as_view(), name="user-verify"),
]
