from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from config.api import IsOwnerOrAdmin, OwnedModelViewSet, id_param, uuid_param, visible_to
from flows import preview, services
from flows.models import Flow, FlowRun

from .serializers import FlowRunSerializer, FlowSerializer, PreviewSerializer, UnsavedPreviewSerializer

PREVIEW_RESPONSES = {200: OpenApiResponse(description="records, rejected, errors"),
                     400: OpenApiResponse(description="the mapping cannot compile (names the field)"),
                     422: OpenApiResponse(description="the payload cannot be read")}


class FlowViewSet(OwnedModelViewSet):
    queryset = Flow.objects.all()
    serializer_class = FlowSerializer
    team_actions = ("preview",)  # a team member may preview a shared flow (nothing is written)

    @extend_schema(request=PreviewSerializer, responses=PREVIEW_RESPONSES)
    @action(detail=True, methods=["post"], url_path="preview")
    def preview(self, request, pk=None):
        """The flow's mapping (or an unsaved one) applied to a message or a sample; nothing is written."""
        flow = self.get_object()
        params = PreviewSerializer(data=request.data, context={"request": request})
        params.is_valid(raise_exception=True)
        return _preview(lambda: preview.request_for_flow(flow, **_preview_args(params.validated_data)))

    @extend_schema(request=None, responses={202: OpenApiResponse(description="queued and read counts")})
    @action(detail=True, methods=["post"], url_path="run")
    def run(self, request, pk=None):
        """Run the flow now: queue what its listener holds and read its source connection."""
        flow = self.get_object()
        with transaction.atomic():
            counts = services.run_timed_flow(flow.pk, trigger="manual")
        return Response(counts, status=202)

    @extend_schema(request=UnsavedPreviewSerializer, responses=PREVIEW_RESPONSES, operation_id="flows_preview_unsaved")
    @action(detail=False, methods=["post"], url_path="preview")
    def preview_unsaved(self, request):
        """A mapping not saved in any flow, applied with a source format to a sample or a message."""
        params = UnsavedPreviewSerializer(data=request.data, context={"request": request})
        params.is_valid(raise_exception=True)
        data = _preview_args(params.validated_data)
        source_format = data.pop("source_format")
        mapping = data.pop("mapping")
        return _preview(lambda: preview.request_for_format(source_format, mapping, user_id=request.user.pk, **data))


def _preview_args(data: dict) -> dict:
    keys = ("message", "sample", "mapping", "lookups", "on_error", "limit", "source_format")
    return {k: data[k] for k in keys if data.get(k) is not None}


def _preview(build) -> Response:
    try:
        return Response(preview.preview_mapping(build()))
    except preview.PreviewRefused as exc:
        return Response({"field": exc.field, "detail": exc.reason, exc.field: [exc.reason]}, status=exc.status)


class FlowRunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = FlowRun.objects.all()  # the model, for the schema; get_queryset() filters
    serializer_class = FlowRunSerializer
    permission_classes = viewsets.ReadOnlyModelViewSet.permission_classes + [IsOwnerOrAdmin]
    owner_field = "flow__owner"

    def get_queryset(self):
        queryset = visible_to(self.request.user, FlowRun.objects.all(), "flow__owner")
        params = self.request.query_params
        flow = id_param(params, "flow")
        if flow is not None:
            queryset = queryset.filter(flow_id=flow)
        message = uuid_param(params, "message")
        if message is not None:
            queryset = queryset.filter(message_id=message)
        if params.get("status"):
            if params["status"] not in FlowRun.Status.values:
                raise ValidationError({"status": [f"use one of {', '.join(FlowRun.Status.values)}"]})
            queryset = queryset.filter(status=params["status"])
        return queryset.order_by("-started_at", "-id")
