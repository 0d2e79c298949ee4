"""Sign-up, email verification and plan choice: /api/account, /api/user/verify, /api/account/plan."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.parsers import BoundedJSONParser
from jobs.serializers import ErrorSerializer
from onboarding import tasks as emails

from . import services
from .models import Account, ApiKey


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class SignupSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)


class PlanSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=50)


def account_json(account: Account) -> dict:
    return {
        "id": account.pk,
        "name": account.name,
        "plan": account.plan or None,
        "trialEndsOn": account.trial_ends_on.isoformat() if account.trial_ends_on else None,
        "trialEndedAt": account.trial_ended_at.isoformat() if account.trial_ended_at else None,
        "upgradedTo": account.upgraded_to or None,
    }


ERRORS = {code: ErrorSerializer for code in (400, 409, 413, 415, 429, 503)}


class SignupView(APIView):
    """Sign up: a user, an account on trial, and the verification email (sent by a job)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    parser_classes = [BoundedJSONParser]

    @extend_schema(summary="Sign up", request=SignupSerializer, responses={201: dict, **ERRORS})
    def post(self, request):
        body = SignupSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            user, account = services.account_signup(**body.validated_data)
        except services.InvalidSignup as exc:
            raise exceptions.ValidationError(exc.errors) from None
        except services.EmailTaken as exc:
            raise Conflict(str(exc)) from None
        emails.send_verification_email.delay(user.pk)  # sent after commit
        return Response(
            {"user": {"id": user.pk, "email": user.email, "name": user.first_name, "verified": False},
             "account": account_json(account)},
            status=status.HTTP_201_CREATED,
        )


class VerifyView(APIView):
    """Verify an email address with the token from the verification email (POST, or the link's GET)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    parser_classes = [BoundedJSONParser]

    def verify(self, token):
        try:
            user, verified_now = services.user_verify(token=token)
        except services.BadToken as exc:
            raise BadRequest(str(exc)) from None
        if verified_now:
            emails.send_welcome_email.delay(user.pk)
        return Response({"verified": True, "email": user.email, "alreadyVerified": not verified_now})

    @extend_schema(summary="Verify an email address", request=TokenSerializer, responses={200: dict, **ERRORS})
    def post(self, request):
        body = TokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self.verify(body.validated_data["token"])

    @extend_schema(
        summary="Verify an email address (the link in the email)",
        parameters=[OpenApiParameter("token", str, required=True)],
        responses={200: dict, **ERRORS},
    )
    def get(self, request):
        body = TokenSerializer(data={"token": request.query_params.get("token", "")})
        body.is_valid(raise_exception=True)
        return self.verify(body.validated_data["token"])


class PlanView(APIView):
    """Choose the account's subscription plan; the plan-selected email follows (by a job)."""

    permission_classes = [IsAuthenticated]
    parser_classes = [BoundedJSONParser]

    @extend_schema(summary="Choose a plan", request=PlanSerializer, responses={200: dict, **ERRORS})
    def post(self, request):
        body = PlanSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = (
            request.auth.account if isinstance(request.auth, ApiKey) else services.account_for_user(request.user)
        )
        try:
            account = services.account_select_plan(account=account, plan=body.validated_data["plan"])
        except services.UnknownPlan as exc:
            raise BadRequest(str(exc)) from None
        emails.send_plan_selected_email.delay(request.user.pk, account.pk)
        return Response(account_json(account))
