"""POST /api/v1/token: a login and password in, an expiring bearer token out."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import issue_token
from accounts.lockout import is_locked, lockout_message


class TokenRequestSerializer(serializers.Serializer):
    login = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()})},
    )
    def post(self, request):
        given = TokenRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        if is_locked(given.validated_data["login"]):
            return Response({"detail": lockout_message()}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        issued = issue_token(given.validated_data["login"], given.validated_data["password"])
        if issued is None:
            return Response({"detail": "wrong login or password"}, status=status.HTTP_401_UNAUTHORIZED)
        raw, expires_at = issued
        return Response({"token": raw, "expires_at": expires_at})
