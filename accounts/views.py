"""The account API: sign-up and the caller's account, email verification, sign-in, plan choice."""

from django.conf import settings
from django.template.response import TemplateResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api import ApiKeyRateThrottle, BoundedJSONParser, ErrorSerializer, HasScope

from . import services
from .models import SCOPES, Account, ApiKey
from .throttling import ClientRateThrottle


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class BadCredentials(exceptions.APIException):
    # Not DRF's AuthenticationFailed: this view takes no credentials header, and DRF would turn
    # that one into a 403.
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "unauthenticated"


class EmailUnverified(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_unverified"


class SignupSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    # Kept as typed, spaces included, as at sign-in.
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)


class PlanSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=50)


class SignInSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES), required=False, allow_empty=False, max_length=len(SCOPES)
    )
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


def account_json(account: Account) -> dict:
    return {
        "id": account.pk,
        "name": account.name,
        "plan": account.plan or None,
        "trialEndsOn": account.trial_ends_on.isoformat() if account.trial_ends_on else None,
        "trialEndedAt": account.trial_ended_at.isoformat() if account.trial_ended_at else None,
        "upgradedTo": account.upgraded_to or None,
    }


def user_json(user) -> dict:
    verification = getattr(user, "email_verification", None)
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.first_name,
        "verified": verification is None or verification.verified_at is not None,
    }


def request_account(request) -> Account:
    """The account a request acts for: the API key's, or the session user's."""
    if isinstance(request.auth, ApiKey):
        return request.auth.account
    return services.account_for_user(request.user)


ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 409, 413, 415, 429, 503)}


class ScopedView(APIView):
    """An endpoint for API keys and sessions: each method names its scope in `required_scopes`."""

    permission_classes = [IsAuthenticated, HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [BoundedJSONParser]


class AnonymousView(APIView):
    """An endpoint for clients without credentials, limited per client address (its `throttle_scope`)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ClientRateThrottle]
    parser_classes = [BoundedJSONParser]


class AccountView(ScopedView):
    """POST: sign up (anonymous). GET: the caller's user and account (scope account.read)."""

    throttle_scope = "signup"
    required_scopes = {"get": "account.read"}

    # One URL, two kinds of caller: sign-up is anonymous (limited per client address), reading
    # the account needs credentials and a scope (the project's defaults).
    def signing_up(self) -> bool:
        # drf-spectacular builds views without a request while it writes the schema.
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self):
        return [] if self.signing_up() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self.signing_up() else super().get_permissions()

    def get_throttles(self):
        return [ClientRateThrottle()] if self.signing_up() else super().get_throttles()

    @extend_schema(summary="Sign up", request=SignupSerializer, responses={201: dict, **ERRORS}, auth=[])
    def post(self, request):
        body = SignupSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            user, account = services.account_signup(**body.validated_data)
        except services.InvalidSignup as exc:
            raise exceptions.ValidationError(exc.errors) from None
        except services.EmailTaken as exc:
            raise Conflict(str(exc)) from None
        return Response({"user": user_json(user), "account": account_json(account)}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Read your user and account", responses={200: dict, **ERRORS})
    def get(self, request):
        scopes = request.auth.scopes if isinstance(request.auth, ApiKey) else list(SCOPES)
        return Response({"user": user_json(request.user), "account": account_json(request_account(request)), "scopes": scopes})


class VerifyView(AnonymousView):
    """Verify an email address with the token from the verification email (POST, or the link's GET)."""

    throttle_scope = "verify"

    def verify(self, token) -> tuple[object, bool]:
        try:
            return services.user_verify(token=token)
        except services.BadToken as exc:
            raise BadRequest(str(exc)) from None

    @extend_schema(summary="Verify an email address", request=TokenSerializer, responses={200: dict, **ERRORS})
    def post(self, request):
        body = TokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user, verified_now = self.verify(body.validated_data["token"])
        return Response({"verified": True, "email": user.email, "alreadyVerified": not verified_now})

    @extend_schema(
        summary="Verify an email address (the link in the email): an HTML page for browsers, JSON otherwise",
        parameters=[OpenApiParameter("token", str, required=True)],
        responses={200: dict, **ERRORS},
    )
    def get(self, request):
        body = TokenSerializer(data={"token": request.query_params.get("token", "")})
        body.is_valid(raise_exception=True)
        user, verified_now = self.verify(body.validated_data["token"])
        if self.wants_html(request):
            context = {"email": user.email, "already": not verified_now, "signin_url": settings.APP_SIGNIN_URL}
            return TemplateResponse(request, "accounts/verified.html", context)
        return Response({"verified": True, "email": user.email, "alreadyVerified": not verified_now})

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if self.request.method == "GET" and self.wants_html(self.request):
            # A browser that opened the link gets a page, whatever went wrong.
            error = response.data["error"]
            context = {"message": error["message"], "status": error["status"], "signin_url": settings.APP_SIGNIN_URL}
            page = TemplateResponse(self.request, "accounts/verify_failed.html", context, status=response.status_code)
            for header in ("Retry-After",):
                if header in response:
                    page[header] = response[header]
            return page
        return response

    def perform_content_negotiation(self, request, force=False):
        # A browser asking only for text/html still gets its page (JSON is the fallback renderer).
        return super().perform_content_negotiation(request, force=True)

    @staticmethod
    def wants_html(request) -> bool:
        return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


class TokenView(AnonymousView):
    """Sign in: trade an email and password for a new API key of the user's account."""

    throttle_scope = "signin"

    @extend_schema(summary="Sign in: get an API key", request=SignInSerializer, responses={201: dict, **ERRORS}, auth=[])
    def post(self, request):
        body = SignInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            api_key, clear = services.api_key_sign_in(**body.validated_data)
        except services.BadCredentials as exc:
            raise BadCredentials(str(exc)) from None
        except services.EmailUnverified as exc:
            raise EmailUnverified(str(exc)) from None
        return Response(
            {"key": clear, "prefix": api_key.prefix, "name": api_key.name, "scopes": api_key.scopes,
             "user": user_json(api_key.user), "account": account_json(api_key.account)},
            status=status.HTTP_201_CREATED,
        )


class PlanView(ScopedView):
    """Choose the account's subscription plan; the plan-selected email follows (by a job)."""

    required_scopes = {"post": "account.update"}

    @extend_schema(summary="Choose a plan", request=PlanSerializer, responses={200: dict, **ERRORS})
    def post(self, request):
        body = PlanSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            account = services.account_select_plan(
                account=request_account(request), plan=body.validated_data["plan"], user=request.user
            )
        except services.UnknownPlan as exc:
            raise BadRequest(str(exc)) from None
        return Response(account_json(account))
