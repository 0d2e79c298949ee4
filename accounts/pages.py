"""Minimal pages the emails' links open: sign in, the account (plan, API keys), sign out.

They stand in for a client app: point APP_SIGNIN_URL and APP_PLANS_URL at your front end and
nothing links here any more.
"""

from math import ceil

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from . import services
from .models import SCOPES
from .throttling import client_throttle_wait


class SignInForm(forms.Form):
    email = forms.CharField(max_length=254)
    password = forms.CharField(max_length=128, strip=False)


def safe_next(request, target: str | None) -> str:
    """Where to go after signing in: `target` if it stays on this site, else the account page."""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("account-page")


@require_http_methods(["GET", "POST"])
def signin_page(request):
    form = SignInForm(request.POST or None)
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    error, status = None, 200
    if request.method == "POST":
        wait = client_throttle_wait(request, "signin")
        if wait is not None:
            error, status = f"Too many sign-in attempts from your address; try again in {ceil(wait)} seconds.", 429
        elif not form.is_valid():
            error, status = "Enter your email address and password.", 400
        else:
            try:
                user = services.user_sign_in(**form.cleaned_data)
            except services.BadCredentials as exc:
                error, status = str(exc), 401
            except services.EmailUnverified as exc:
                error, status = str(exc), 403
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect(next_url)
    context = {"form": form, "next": next_url, "error": error, "token_url": f"{settings.SITE_URL}/api/auth/token"}
    response = render(request, "accounts/signin.html", context, status=status)
    if status == 429:
        response["Retry-After"] = str(ceil(wait))
    return response


@login_required
@require_http_methods(["GET", "POST"])
def account_page(request):
    account = services.account_for_user(request.user)
    new_key, error = None, None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "plan":
            try:
                services.account_select_plan(account=account, plan=request.POST.get("plan", ""), user=request.user)
            except services.UnknownPlan as exc:
                error = str(exc)
            else:
                messages.success(request, f"You chose the {account.plan} plan. We have sent you an email about it.")
                return redirect("account-page")
        elif action == "key":
            # Shown on this page only, never kept: no redirect, no session.
            _, new_key = services.api_key_create(user=request.user, account=account, scopes=SCOPES, name="web sign-in")
        else:
            error = "Unknown action."
    context = {
        "account": account, "plans": settings.ACCOUNT_PLANS, "new_key": new_key, "error": error,
        "api_url": f"{settings.SITE_URL}/api/job",
    }
    return render(request, "accounts/account.html", context, status=400 if error else 200)


@require_POST
def signout_page(request):
    logout(request)
    return redirect("signin-page")


def home_page(request):
    return redirect("account-page")


urlpatterns = [
    path("", home_page, name="home-page"),
    path("signin", signin_page, name="signin-page"),
    path("account", account_page, name="account-page"),
    path("signout", signout_page, name="signout-page"),
]
