from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import IsOwnerOrAdmin, OwnedModelViewSet, visible_to
from flows.models import FlowRun
from listeners.models import Listener, Message
from listeners.queries import filter_messages
from listeners.services import (
    ResubmitRefused,
    cancel_message,
    edit_and_resubmit,
    resubmit_message,
    resubmit_messages,
)

from .serializers import ListenerSerializer, MessageSerializer


class ListenerViewSet(OwnedModelViewSet):
    queryset = Listener.objects.select_related("flow").prefetch_related("allowed_users")
    serializer_class = ListenerSerializer


@extend_schema(parameters=[
    OpenApiParameter("listener", int), OpenApiParameter("flow", int), OpenApiParameter("status", str),
    OpenApiParameter("since", str, description="ISO 8601"), OpenApiParameter("until", str, description="ISO 8601"),
    OpenApiParameter("q", str, description="text in the payload"),
])
class MessageViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Message.objects.all()  # the model, for the schema; get_queryset() filters
    serializer_class = MessageSerializer
    permission_classes = viewsets.ReadOnlyModelViewSet.permission_classes + [IsOwnerOrAdmin]
    # Operators in a team the listener is shared with may act on its messages.
    team_actions = ("resubmit", "cancel", "edit_resubmit")

    def get_queryset(self):
        queryset = visible_to(self.request.user, Message.objects.all()).defer("body", "body_text", "response_body")
        queryset = queryset.prefetch_related(Prefetch("runs", queryset=FlowRun.objects.order_by("started_at")))
        return filter_messages(queryset, self.request.query_params)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def body(self, request, pk=None):
        message = self.get_object()
        content_type = message.content_type or "application/octet-stream"
        if message.charset:
            content_type += f"; charset={message.charset}"
        response = HttpResponse(message.read_body(), content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="{message.pk}.body"'
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(request=None, responses={200: MessageSerializer, 409: OpenApiResponse(description="already running or done")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        message = self.get_object()
        try:
            cancel_message(message, request.user)
        except ResubmitRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        message.refresh_from_db()
        return Response(self.get_serializer(message).data)

    @extend_schema(request=inline_serializer("EditedBody", {"body": serializers.CharField()}),
                   responses={201: MessageSerializer, 409: OpenApiResponse(description="cannot be resubmitted")})
    @action(detail=True, methods=["post"], url_path="edit-resubmit")
    def edit_resubmit(self, request, pk=None):
        """Run the flow on an edited copy of the payload: a new message linked to this one."""
        message = self.get_object()
        body = request.data.get("body") if hasattr(request.data, "get") else None
        if not isinstance(body, str):
            return Response({"body": ["the edited payload, as text"]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            copy = edit_and_resubmit(message, body.encode("utf-8"), request.user)
        except ResubmitRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        copy.refresh_from_db()
        return Response(self.get_serializer(copy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: OpenApiResponse(description="resubmitted and skipped counts")},
                   operation_id="messages_resubmit_filtered")
    @action(detail=False, methods=["post"], url_path="resubmit")
    def resubmit_filtered(self, request):
        """Resubmit every message the list filters (listener, flow, status, since, until, q) select."""
        return Response(resubmit_messages(self.get_queryset()), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: MessageSerializer})
    @action(detail=True, methods=["post"])
    def resubmit(self, request, pk=None):
        message = self.get_object()
        try:
            resubmit_message(message)
        except ResubmitRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        message.refresh_from_db()
        return Response(self.get_serializer(message).data, status=status.HTTP_202_ACCEPTED)
