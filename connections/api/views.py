from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import OwnedModelViewSet
from connections.models import Connection
from connections.services import test_connection

from .serializers import ConnectionSerializer


class ConnectionViewSet(OwnedModelViewSet):
    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer

    @extend_schema(
        request=None,
        responses={200: inline_serializer("ConnectionTest", {"ok": serializers.BooleanField(), "detail": serializers.CharField()})},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        ok, detail = test_connection(self.get_object())
        return Response({"ok": ok, "detail": detail})
